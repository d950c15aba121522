"""scripts/version.sh: the version every build and package carries, in each
kind of tree (tagged, past a tag, untagged, dirty, no git), run on a scratch
copy so the real repository's tags do not matter."""
import os
import re
import shutil
import subprocess

from conftest import ROOT


def tree(tmp_path, git=True):
    d = tmp_path / "src"
    (d / "scripts").mkdir(parents=True)
    shutil.copy(os.path.join(ROOT, "scripts", "version.sh"), d / "scripts" / "version.sh")
    (d / "VERSION").write_text("0.4.0\n")
    if git:
        env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
               "GIT_COMMITTER_EMAIL": "t@example.org", "PATH": os.environ["PATH"], "HOME": str(tmp_path)}
        for cmd in (["init", "-q"], ["add", "."], ["commit", "-qm", "one"]):
            subprocess.run(["git", "-C", str(d), *cmd], check=True, env=env, capture_output=True)
        tree.env = env
    return d


def version(d):
    r = subprocess.run(["sh", str(d / "scripts" / "version.sh")], capture_output=True, text=True, check=True)
    return r.stdout.strip()


def git(d, *args):
    subprocess.run(["git", "-C", str(d), *args], check=True, env=tree.env, capture_output=True)


def test_no_git_uses_the_version_file(tmp_path):
    assert version(tree(tmp_path, git=False)) == "0.4.0"


def test_untagged_tagged_past_and_dirty(tmp_path):
    d = tree(tmp_path)
    sha = subprocess.run(["git", "-C", str(d), "rev-parse", "--short=7", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    assert version(d) == f"0.4.0+g{sha}"
    git(d, "tag", "v1.2.0")
    assert version(d) == "1.2.0"
    (d / "f").write_text("x")
    git(d, "add", "f")
    git(d, "commit", "-qm", "two")
    v = version(d)
    assert re.fullmatch(r"1\.2\.0\+1\.g[0-9a-f]{7,}", v), v
    (d / "f").write_text("changed")
    assert version(d) == v + ".dirty"
    # Tags that are not versions are ignored.
    git(d, "tag", "nightly")
    assert version(d) == v + ".dirty"
    # Every form is a valid Debian upstream version: no '-', starts with a digit.
    assert "-" not in v and v[0].isdigit()
