/*
 * api_scram.c - AlterUserScramCredentials (51) and
 * DescribeUserScramCredentials (50): SCRAM users kept in the metadata log
 * as UserScramCredentialRecord, as Kafka keeps them.
 *
 * Alter: the client sends the salted password (never the password); the
 * broker derives the stored and server keys, and the controller writes one
 * record per change. Checks as Kafka's: a known mechanism
 * (UNSUPPORTED_SASL_MECHANISM), a non-empty name, 4096..16384 iterations
 * and a salted password of the hash's length (UNACCEPTABLE_CREDENTIAL), a
 * user and mechanism named once per request (DUPLICATE_RESOURCE), and the
 * deletion of an existing credential only (RESOURCE_NOT_FOUND). One result
 * per user: a user with any refused change has none of its changes made.
 */
#include <string.h>

#include "broker/apis.h"
#include "broker/authz.h"
#include "broker/broker.h"
#include "broker/meta.h"
#include "broker/sasl.h"
#include "core/log.h"
#include "security/sasl.h"

typedef struct user_slot {
    kstr name;
    int16_t error;
    const char *message;
} user_slot;

static int find_user(user_slot *u, int32_t n, kstr name) {
    for (int32_t i = 0; i < n; i++)
        if (u[i].name.len == name.len &&
            (name.len <= 0 || memcmp(u[i].name.ptr, name.ptr, (size_t)name.len) == 0))
            return i;
    return -1;
}

static void refuse(user_slot *u, int16_t err, const char *msg) {
    if (u->error == 0) {
        u->error = err;
        u->message = msg;
    }
}

breq_status api_alter_user_scram_credentials(breq *r) {
    const kafka_alter_user_scram_credentials_request *req = r->req;
    kafka_alter_user_scram_credentials_response *resp = r->resp;
    int32_t nd = req->deletions_count > 0 ? req->deletions_count : 0;
    int32_t nu = req->upsertions_count > 0 ? req->upsertions_count : 0;
    int32_t nops = nd + nu;
    user_slot *users = breq_calloc(r, (size_t)(nops ? nops : 1), sizeof *users);
    ctrl_scram_op *ops = breq_calloc(r, (size_t)(nops ? nops : 1), sizeof *ops);
    int32_t *op_user = breq_calloc(r, (size_t)(nops ? nops : 1), sizeof *op_user);
    uint8_t *keys = breq_calloc(r, (size_t)(nops ? nops : 1), 2 * SASL_SCRAM_HASH_MAX);
    if (!users || !ops || !op_user || !keys)
        return BREQ_CLOSE;
    int32_t n_users = 0;
    bool denied = !bauthz_cluster(r, ACL_OP_ALTER);
    /* Each op, checked; the first refusal of a user is its answer. */
    for (int32_t i = 0; i < nops; i++) {
        bool del = i < nd;
        kstr name = del ? req->deletions[i].name : req->upsertions[i - nd].name;
        int8_t mech = del ? req->deletions[i].mechanism : req->upsertions[i - nd].mechanism;
        int u = find_user(users, n_users, name);
        if (u < 0) {
            u = n_users++;
            users[u].name = name;
        }
        op_user[i] = u;
        if (denied)
            refuse(&users[u], KAFKA_ERR_CLUSTER_AUTHORIZATION_FAILED, "Authorization failed (CLUSTER ALTER)");
        ctrl_scram_op *op = &ops[i];
        op->name = name;
        op->mechanism = mech;
        op->remove = del;
        for (int32_t k = 0; k < i; k++)
            if (op_user[k] == u && ops[k].mechanism == mech)
                refuse(&users[u], KAFKA_ERR_DUPLICATE_RESOURCE,
                       "A user credential cannot be altered twice in the same request");
        if (name.len <= 0) {
            refuse(&users[u], KAFKA_ERR_UNACCEPTABLE_CREDENTIAL, "Username must not be empty");
            continue;
        }
        if (mech != SASL_SCRAM_SHA_256 && mech != SASL_SCRAM_SHA_512) {
            refuse(&users[u], KAFKA_ERR_UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism");
            continue;
        }
        if (del)
            continue;
        const kafka_alter_user_scram_credentials_request_scram_credential_upsertion *up =
            &req->upsertions[i - nd];
        sasl_scram_cred cred;
        if (up->iterations < SASL_SCRAM_ITER_MIN || up->iterations > SASL_SCRAM_ITER_MAX) {
            refuse(&users[u], KAFKA_ERR_UNACCEPTABLE_CREDENTIAL,
                   up->iterations < SASL_SCRAM_ITER_MIN ? "Too few iterations" : "Too many iterations");
            continue;
        }
        if (up->salted_password.len <= 0 || up->salt.len <= 0 ||
            sasl_scram_from_salted(mech, up->salted_password.ptr, (size_t)up->salted_password.len,
                                   up->salt.ptr, (size_t)up->salt.len, up->iterations, &cred) != 0) {
            refuse(&users[u], KAFKA_ERR_UNACCEPTABLE_CREDENTIAL,
                   "The salt or the salted password is empty or has the wrong length");
            continue;
        }
        size_t hl = sasl_scram_hash_len(mech);
        uint8_t *k = keys + (size_t)i * 2 * SASL_SCRAM_HASH_MAX;
        memcpy(k, cred.stored_key, hl);
        memcpy(k + SASL_SCRAM_HASH_MAX, cred.server_key, hl);
        op->iterations = up->iterations;
        op->salt = up->salt;
        op->stored_key = (kbytes){k, (int32_t)hl};
        op->server_key = (kbytes){k + SASL_SCRAM_HASH_MAX, (int32_t)hl};
    }
    /* The ops of users without a refusal go to the controller. */
    ctrl_scram_op *send = breq_calloc(r, (size_t)(nops ? nops : 1), sizeof *send);
    int32_t *send_user = breq_calloc(r, (size_t)(nops ? nops : 1), sizeof *send_user);
    ctrl_item_result *res = breq_calloc(r, (size_t)(nops ? nops : 1), sizeof *res);
    if (!send || !send_user || !res)
        return BREQ_CLOSE;
    int32_t ns = 0;
    for (int32_t i = 0; i < nops; i++)
        if (users[op_user[i]].error == 0) {
            send_user[ns] = op_user[i];
            send[ns++] = ops[i];
        }
    if (ns > 0) {
        bmeta_alter_scram(r->b->meta, send, ns, res);
        for (int32_t i = 0; i < ns; i++)
            if (res[i].error != 0) {
                const char *msg = NULL;
                if (res[i].message[0]) {
                    char *m = breq_alloc(r, strlen(res[i].message) + 1);
                    if (m)
                        msg = strcpy(m, res[i].message);
                }
                refuse(&users[send_user[i]], res[i].error, msg);
            }
    }
    resp->results = breq_calloc(r, (size_t)(n_users ? n_users : 1), sizeof *resp->results);
    if (resp->results == NULL)
        return BREQ_CLOSE;
    resp->results_count = n_users;
    for (int32_t i = 0; i < n_users; i++) {
        kafka_alter_user_scram_credentials_response_alter_user_scram_credentials_result_init(
            &resp->results[i]);
        resp->results[i].user = users[i].name;
        resp->results[i].error_code = users[i].error;
        resp->results[i].error_message = users[i].message ? kstr_c(users[i].message) : KSTR_NULL;
    }
    LOG_INFO("broker", "AlterUserScramCredentials from %s (%s): %d deletions, %d upsertions for %d users",
             r->net->peer, bsasl_principal(r), nd, nu, n_users);
    return BREQ_DONE;
}

breq_status api_describe_user_scram_credentials(breq *r) {
    const kafka_describe_user_scram_credentials_request *req = r->req;
    kafka_describe_user_scram_credentials_response *resp = r->resp;
    if (!bauthz_cluster(r, ACL_OP_DESCRIBE)) {
        resp->error_code = KAFKA_ERR_CLUSTER_AUTHORIZATION_FAILED;
        resp->error_message = kstr_c("Authorization failed (CLUSTER DESCRIBE)");
        resp->results_count = 0;
        return BREQ_DONE;
    }
    md_image *img = bmeta_image(r->b->meta);
    int32_t total = md_image_scram_count(img);
    int32_t asked = req->users_count > 0 ? req->users_count : 0;
    int32_t cap = req->users_count < 0 ? total : asked;
    typedef kafka_describe_user_scram_credentials_response_describe_user_scram_credentials_result result;
    result *out = breq_calloc(r, (size_t)(cap ? cap : 1), sizeof *out);
    if (out == NULL) {
        md_image_unref(img);
        return BREQ_CLOSE;
    }
    int32_t n = 0;
    if (req->users_count < 0) {
        /* Every user with a credential; the list is sorted by name. */
        for (int32_t i = 0; i < total; i++) {
            const md_scram *c = md_image_scram_at(img, i);
            if (n == 0 || strcmp(out[n - 1].user.ptr, c->name) != 0) {
                char *name = breq_alloc(r, strlen(c->name) + 1);
                if (name == NULL)
                    break;
                kafka_describe_user_scram_credentials_response_describe_user_scram_credentials_result_init(
                    &out[n]);
                out[n].user = kstr_c(strcpy(name, c->name));
                out[n].credential_infos = breq_calloc(r, 2, sizeof *out[n].credential_infos);
                out[n].credential_infos_count = 0;
                n++;
            }
            result *u = &out[n - 1];
            if (u->credential_infos && u->credential_infos_count < 2) {
                u->credential_infos[u->credential_infos_count].mechanism = c->mechanism;
                u->credential_infos[u->credential_infos_count++].iterations = c->iterations;
            }
        }
    } else {
        for (int32_t i = 0; i < asked; i++) {
            kstr name = req->users[i].name;
            result *u = &out[n++];
            kafka_describe_user_scram_credentials_response_describe_user_scram_credentials_result_init(u);
            u->user = name;
            u->credential_infos = breq_calloc(r, 2, sizeof *u->credential_infos);
            u->credential_infos_count = 0;
            bool dup = false;
            for (int32_t k = 0; k < i && !dup; k++)
                dup = req->users[k].name.len == name.len &&
                      (name.len <= 0 || memcmp(req->users[k].name.ptr, name.ptr, (size_t)name.len) == 0);
            if (dup) {
                u->error_code = KAFKA_ERR_DUPLICATE_RESOURCE;
                u->error_message =
                    kstr_c("Cannot describe SCRAM credentials for the same user twice in a single request");
                continue;
            }
            char cname[MD_SCRAM_NAME_MAX + 1] = "";
            if (name.len > 0 && name.len <= MD_SCRAM_NAME_MAX) {
                memcpy(cname, name.ptr, (size_t)name.len);
                cname[name.len] = '\0';
            }
            for (int8_t mech = 1; mech <= 2 && u->credential_infos; mech++) {
                const md_scram *c = cname[0] ? md_image_scram(img, cname, mech) : NULL;
                if (c) {
                    u->credential_infos[u->credential_infos_count].mechanism = mech;
                    u->credential_infos[u->credential_infos_count++].iterations = c->iterations;
                }
            }
            if (u->credential_infos_count == 0) {
                u->error_code = KAFKA_ERR_RESOURCE_NOT_FOUND;
                u->error_message = kstr_c("Attempt to describe a user credential that does not exist");
            }
        }
    }
    md_image_unref(img);
    resp->results = out;
    resp->results_count = n;
    return BREQ_DONE;
}
