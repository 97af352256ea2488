/*
 * tls.h - the control channel's certificate: made per run or loaded, its SHA-256 fingerprint, and
 * the agent's check of a coordinator's certificate against a pinned fingerprint.
 *
 * stampede run with --listen tls+tcp://... makes an EC P-256 key and a self-signed certificate
 * for the run (st_tls_cert_make), or loads --tls-cert / --tls-key (st_tls_cert_load), and gives
 * both to nng's listener (coordinator/server.c). Agents know only the fingerprint. nng 1.5.2 does
 * not show a dialer the peer's certificate, so an agent pins in two steps (agent/remote.c):
 *
 *   1. st_tls_fetch_pinned: its own short TLS handshake with OpenSSL fetches the certificate the
 *      coordinator presents, and its SHA-256 (of the DER bytes) must equal the pin;
 *   2. exactly that certificate becomes nng's only trusted CA, with NNG_TLS_AUTH_MODE_REQUIRED and
 *      the certificate's own name (st_tls_cert_name) as server_name.
 *
 * Step 1 alone proves nothing (a certificate is public); step 2 makes nng's own handshake succeed
 * only with a peer that holds the certificate's private key, on every connection and reconnection.
 * The alternatives were weaker or heavier: handing the whole certificate to agents works only
 * where the launcher can pass a few kilobytes (not a person typing a command), and a CA of the
 * user's own makes pinning a matter of key management. The agent trusts exactly the pinned
 * certificate, with nothing behind it, so it must be self-signed (one issued by another would
 * need its issuer trusted too): st_tls_cert_load refuses one that is not.
 *
 * Fingerprints are written as 64 lowercase hex digits; st_tls_fingerprint_parse also takes
 * uppercase, colons between bytes (openssl x509 -fingerprint -sha256) and a "sha256:" prefix.
 *
 * Secrets: the private key lives only in the st_tls_cert (wiped when freed); no message of this
 * module contains it or any part of a PEM file.
 *
 * Errors: ST_EINVAL (bad input, message names the flag or file), ST_ENOTFOUND / ST_EIO (a file
 * does not exist / cannot be read),
 * ST_ECONNECT (nothing accepts a connection at the address), ST_EPROTO (the peer does not finish a
 * TLS handshake), ST_EAUTH (the certificate does not match the pin), ST_ETIMEDOUT, ST_ENOMEM,
 * ST_ESYSTEM (OpenSSL failed otherwise). Messages go to the caller's err buffer.
 *
 * Threading: every function is thread-safe; an st_tls_cert is immutable after it is made.
 */
#ifndef ST_TLS_H
#define ST_TLS_H

#include <stdbool.h>
#include <stddef.h>

/* 64 hex digits and a NUL. */
#define ST_TLS_FINGERPRINT_LEN 65

/* The name in a made certificate's subject (CN) and subjectAltName (DNS); agents verify it. */
#define ST_TLS_CERT_NAME "stampede-coordinator"

typedef struct st_tls_cert st_tls_cert;

/* Makes an EC P-256 key and a self-signed certificate valid from an hour ago (clock skew) to
 * valid_s seconds from now (above 0, at most 400 days). Returns 0, ST_EINVAL, ST_ENOMEM or
 * ST_ESYSTEM; *out only on 0. */
int st_tls_cert_make(st_tls_cert **out, double valid_s, char *err, size_t err_len);

/* Loads a PEM certificate and its PEM private key (unencrypted). Refused with ST_EINVAL, naming
 * --tls-cert or --tls-key and the file: no certificate or key in the file, a key that is not the
 * certificate's, a certificate that is not self-signed or has expired. ST_EIO / ST_ENOTFOUND when a
 * file cannot be read. *out only on 0. */
int st_tls_cert_load(st_tls_cert **out, const char *cert_file, const char *key_file, char *err,
                     size_t err_len);

/* The certificate (PEM), the private key (PEM: never log it), the fingerprint (64 hex digits) and
 * the name agents verify (first DNS subjectAltName, else the subject's CN; "" if neither). All are
 * owned by c and live as long as it. */
const char *st_tls_cert_pem(const st_tls_cert *c);
const char *st_tls_cert_key_pem(const st_tls_cert *c);
const char *st_tls_cert_fingerprint(const st_tls_cert *c);
const char *st_tls_cert_name(const st_tls_cert *c);

/* Wipes the key and frees. NULL is a no-op. */
void st_tls_cert_free(st_tls_cert *c);

/* Reads a certificate from PEM text (the key stays NULL). Returns 0, ST_EINVAL (no certificate in
 * it; what names the text in the message), ST_ENOMEM. */
int st_tls_cert_from_pem(st_tls_cert **out, const char *pem, const char *what, char *err,
                         size_t err_len);

/* Normalises a fingerprint given by a person (see above) into out. Returns 0, or ST_EINVAL with a
 * message naming `what` (a flag or variable). */
int st_tls_fingerprint_parse(const char *text, const char *what, char out[ST_TLS_FINGERPRINT_LEN],
                             char *err, size_t err_len);

/* Whether the URL's scheme is tls+tcp://, tls+tcp4:// or tls+tcp6://. */
bool st_tls_url_is_tls(const char *url);

/* Checks that a pin goes with a coordinator URL: a tls+tcp:// url needs one (pin not NULL), any
 * other url takes none, and the pin has a fingerprint's form. Returns 0, or ST_EINVAL with a
 * message naming pin_src (the flag or variable the pin came from). */
int st_tls_check_pin(const char *url, const char *pin, const char *pin_src, char *err,
                     size_t err_len);

/* Connects to the tls+tcp:// url (host and port from it), completes a TLS handshake within
 * timeout_ms without trusting anything, and checks the presented certificate's SHA-256 against
 * pin (normalised, as st_tls_fingerprint_parse writes it). On 0 *out is that certificate (no
 * key). ST_EAUTH: it does not match (the message names both fingerprints, which are public).
 * ST_EINVAL: not a tls+tcp:// URL. ST_ECONNECT, ST_EPROTO, ST_ETIMEDOUT, ST_ENOMEM as above. */
int st_tls_fetch_pinned(const char *url, const char *pin, int timeout_ms, st_tls_cert **out,
                        char *err, size_t err_len);

#endif
