/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: what an HTTP client controls beyond the routing: the admin API bodies
 * (push, erase, experiment, rules), a client token (hello.token, Authorization header), verified
 * with an HS256 verifier, a Sec-WebSocket-Extensions offer, and a compressed WebSocket message.
 * The first byte picks the parser. */
#include "api/admin_api.h"
#include "engine/rules.h"
#include "api/experiment_api.h"
#include "auth/jwt.h"
#include "proto/proto.h"
#include "net/wsdeflate.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static rc_jwt_verifier_t *verifier(void)
{
    static rc_jwt_verifier_t *v;
    char err[128];
    rc_jwt_config_t cfg = {"fuzz-secret-0123456789abcdef0123456789", NULL, "idp", "aud", 30};
    if (v == NULL)
        v = rc_jwt_verifier_new(&cfg, err, sizeof(err));
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    char err[128], user[RC_ID_MAX + 1];
    switch (data[0] % 4) {
    case 0: {
        rc_api_push_t p;
        if (rc_api_push_parse(&p, body, len, err, sizeof(err)) == 0)
            rc_api_push_free(&p);
        break;
    }
    case 1:
        if (data[0] & 8) { /* the gateway reads the header into 512 bytes, NUL-terminated */
            char offer[512];
            size_t n = len < sizeof(offer) - 1 ? len : sizeof(offer) - 1;
            memcpy(offer, body, n);
            offer[n] = '\0';
            int bits = rc_deflate_offer_window_bits(offer);
            if (bits != 0 && (bits < 9 || bits > 15))
                abort();
        } else if (data[0] & 16) {
            static rc_inflater_t *inf;
            static rc_wbuf_t out;
            if (inf == NULL)
                inf = rc_inflater_new();
            long n = rc_inflate_message(inf, body, len, 4096, &out);
            if (n > 4096 || (n >= 0 && (size_t)n != out.len) || (n < 0 && out.len != 0))
                abort();
        } else {
            rc_api_erase_parse(body, len, user, err, sizeof(err));
        }
        break;
    case 2: {
        json_t *j = rc_api_load_object(body, len, err, sizeof(err));
        if (j != NULL) {
            static const rc_blend_t base = {0.8f, 0.1f, 0.07f, 0.03f, 0};
            rc_experiment_t x;
            char spec[RC_EXPERIMENT_SPEC_MAX];
            rc_rules_t rules = {0};
            if (data[0] & 8) {
                if (rc_rules_from_json(&rules, j, err, sizeof(err)) == 0)
                    free(rc_rules_to_json(&rules));
                rc_rules_free(&rules);
            } else {
                rc_experiment_api_spec(data[0] & 4 ? "/api/v1/experiment/stop"
                                                   : "/api/v1/experiment",
                                       j, &base, &x, spec, sizeof(spec), err, sizeof(err));
            }
            json_decref(j);
        }
        break;
    }
    default: {
        rc_jwt_claims_t claims;
        rc_jwt_verify(verifier(), body, len, 1800000000, &claims);
        break;
    }
    }
    return 0;
}
