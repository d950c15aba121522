# Cross-compiling for arm64 with Debian's gcc-aarch64-linux-gnu and the arm64
# -dev packages installed through multiarch (dpkg --add-architecture arm64):
# headers are the shared /usr/include, libraries /usr/lib/aarch64-linux-gnu.
# Programs (ctest) run under qemu-user-static. Used by `make test-aarch64`.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# Only arm64 libraries: never link the build machine's.
set(CMAKE_IGNORE_PATH /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64-static)
