/* net/tls.c: TLS contexts, the TLS transport under net_stream, error names.
 *
 * OpenSSL never touches a socket: ciphertext from the read callback is
 * written into the SSL's read BIO, and whatever OpenSSL produces in its
 * write BIO (handshake messages, records, alerts, close_notify) is moved to
 * the raw write path after every SSL_* call (`flush_wbio`). A read may thus
 * cause writes (handshake, key updates) and a write before the handshake has
 * finished is kept as plaintext in `tls_pending` until it has.
 *
 * Certificate verification is on unless the caller turns it off; failures
 * surface as NET_E_CERT_BASE - X509_V_ERR_* through on_connect, and
 * net_error_name() gives Node's names for them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net_int.h"

/* ---- contexts ------------------------------------------------------------- */
static void ssl_err(char err[CU_ERRLEN], const char *what, const char *arg)
{
    char detail[256] = "";
    unsigned long e = ERR_peek_last_error();
    if (e)
        ERR_error_string_n(e, detail, sizeof detail);
    snprintf(err, CU_ERRLEN, "%s%s%s%s%s", what, arg ? " " : "", arg ? arg : "",
             *detail ? ": " : "", detail);
    ERR_clear_error();
}

int net_tls_client_new(net_tls **out, bool verify, const char *ca_file, char err[CU_ERRLEN])
{
    *out = NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        ssl_err(err, "TLS client context", NULL);
        return NET_E_TLS;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (SSL_CTX_set_default_verify_paths(ctx) != 1)
            ERR_clear_error(); /* no system store: only explicit CAs then */
        if (ca_file && SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
            ssl_err(err, "cannot load CA file", ca_file);
            goto fail;
        }
        const char *extra = getenv("NODE_EXTRA_CA_CERTS");
        if (extra && *extra && SSL_CTX_load_verify_locations(ctx, extra, NULL) != 1) {
            /* Node warns and carries on; so do we. */
            cu_warn("ignoring NODE_EXTRA_CA_CERTS=%s: cannot load it", extra);
            ERR_clear_error();
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    net_tls *t = cu_calloc(1, sizeof *t);
    t->ctx = ctx;
    t->verify = verify;
    *out = t;
    return 0;
fail:
    SSL_CTX_free(ctx);
    return NET_E_TLS;
}

int net_tls_server_new(net_tls **out, const char *cert_file, const char *key_file,
                       char err[CU_ERRLEN])
{
    *out = NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ssl_err(err, "TLS server context", NULL);
        return NET_E_TLS;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        ssl_err(err, "cannot load certificate", cert_file);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        ssl_err(err, "cannot load private key", key_file);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_err(err, "private key does not match certificate", key_file);
        goto fail;
    }
    net_tls *t = cu_calloc(1, sizeof *t);
    t->ctx = ctx;
    t->server = true;
    *out = t;
    return 0;
fail:
    SSL_CTX_free(ctx);
    return NET_E_TLS;
}

void net_tls_free(net_tls *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    free(t);
}

/* ---- the transport ---------------------------------------------------------- */
static bool is_ip_literal(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

int net__tls_attach(net_stream *s, net_tls *t, const char *server_name)
{
    SSL *ssl = SSL_new(t->ctx);
    if (!ssl)
        goto fail;
    BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
    if (!rbio || !wbio) {
        BIO_free(rbio);
        BIO_free(wbio);
        SSL_free(ssl);
        goto fail;
    }
    BIO_set_mem_eof_return(rbio, -1); /* empty means "want more", not EOF */
    BIO_set_mem_eof_return(wbio, -1);
    SSL_set_bio(ssl, rbio, wbio);
    if (t->server) {
        SSL_set_accept_state(ssl);
    } else {
        SSL_set_connect_state(ssl);
        if (server_name && *server_name) {
            if (!is_ip_literal(server_name))
                SSL_set_tlsext_host_name(ssl, server_name); /* no SNI for IPs (RFC 6066) */
            if (t->verify && SSL_set1_host(ssl, server_name) != 1)
                goto fail_ssl;
        }
    }
    s->ssl = ssl;
    s->rbio = rbio;
    s->wbio = wbio;
    return 0;
fail_ssl:
    SSL_free(ssl);
fail:
    ERR_clear_error();
    return NET_E_TLS;
}

void net__tls_free(net_stream *s)
{
    if (s->ssl)
        SSL_free(s->ssl); /* frees both BIOs */
    s->ssl = NULL;
    cu_buf_free(&s->tls_pending);
}

/* Moves OpenSSL's output to the socket. */
static void flush_wbio(net_stream *s)
{
    char *p;
    long n = BIO_get_mem_data(s->wbio, &p);
    if (n <= 0)
        return;
    net__raw_write(s, p, (size_t)n);
    (void)BIO_reset(s->wbio);
}

/* The error for a failed handshake: a verification result if there is one. */
static int handshake_error(net_stream *s)
{
    long v = SSL_get_verify_result(s->ssl);
    ERR_clear_error();
    if (!s->is_server && v != X509_V_OK)
        return NET_E_CERT_BASE - (int)v;
    return NET_E_TLS;
}

static int write_plain(net_stream *s, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    int n = SSL_write(s->ssl, data, (int)len);
    if (n <= 0) {
        int e = SSL_get_error(s->ssl, n);
        ERR_clear_error();
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            cu_buf_append(&s->tls_pending, data, len);
            return 0;
        }
        return NET_E_TLS;
    }
    flush_wbio(s);
    return 0;
}

static void flush_pending_plain(net_stream *s)
{
    if (!s->tls_pending.len)
        return;
    cu_buf b = s->tls_pending;
    s->tls_pending = (cu_buf)CU_BUF_INIT;
    int rc = write_plain(s, b.data, b.len);
    cu_buf_free(&b);
    if (rc < 0)
        net__fire_fail(s, rc);
}

static bool do_handshake(net_stream *s)
{
    int r = SSL_do_handshake(s->ssl);
    flush_wbio(s);
    if (r == 1) {
        s->hs_done = true;
        if (s->is_server)
            s->state = NS_OPEN;
        flush_pending_plain(s);
        if (!s->is_server)
            net__fire_connect(s, 0);
        return net__live(s);
    }
    int e = SSL_get_error(s->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        return false;
    }
    net__fire_fail(s, handshake_error(s));
    return false;
}

void net__tls_start(net_stream *s)
{
    do_handshake(s);
}

void net__tls_input(net_stream *s, const char *data, size_t len)
{
    if (BIO_write(s->rbio, data, (int)len) != (int)len) {
        net__fire_fail(s, NET_E_TLS);
        return;
    }
    if (!s->hs_done && !do_handshake(s))
        return;
    for (;;) {
        char *pbuf = net__thread_pbuf();
        int n = SSL_read(s->ssl, pbuf, NET_TLS_PBUF_SIZE);
        if (n > 0) {
            if (s->cbs->on_read)
                s->cbs->on_read(s, pbuf, (size_t)n);
            if (!net__live(s))
                return;
            continue;
        }
        int e = SSL_get_error(s->ssl, n);
        ERR_clear_error();
        flush_wbio(s);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return;
        net__fire_end(s, e == SSL_ERROR_ZERO_RETURN ? UV_EOF : NET_E_TLS);
        return;
    }
}

int net__tls_write(net_stream *s, const void *data, size_t len)
{
    if (!s->hs_done || s->tls_pending.len) {
        cu_buf_append(&s->tls_pending, data, len);
        return 0;
    }
    return write_plain(s, data, len);
}

void net__tls_shutdown(net_stream *s)
{
    if (SSL_shutdown(s->ssl) < 0)
        ERR_clear_error();
    flush_wbio(s);
}

/* ---- error names ------------------------------------------------------------ */
static const char *cert_error_name(int v)
{
    switch (v) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT: return "UNABLE_TO_GET_ISSUER_CERT";
    case X509_V_ERR_UNABLE_TO_GET_CRL: return "UNABLE_TO_GET_CRL";
    case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE: return "UNABLE_TO_DECRYPT_CERT_SIGNATURE";
    case X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE: return "UNABLE_TO_DECRYPT_CRL_SIGNATURE";
    case X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY: return "UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY";
    case X509_V_ERR_CERT_SIGNATURE_FAILURE: return "CERT_SIGNATURE_FAILURE";
    case X509_V_ERR_CRL_SIGNATURE_FAILURE: return "CRL_SIGNATURE_FAILURE";
    case X509_V_ERR_CERT_NOT_YET_VALID: return "CERT_NOT_YET_VALID";
    case X509_V_ERR_CERT_HAS_EXPIRED: return "CERT_HAS_EXPIRED";
    case X509_V_ERR_CRL_NOT_YET_VALID: return "CRL_NOT_YET_VALID";
    case X509_V_ERR_CRL_HAS_EXPIRED: return "CRL_HAS_EXPIRED";
    case X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD: return "ERROR_IN_CERT_NOT_BEFORE_FIELD";
    case X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD: return "ERROR_IN_CERT_NOT_AFTER_FIELD";
    case X509_V_ERR_ERROR_IN_CRL_LAST_UPDATE_FIELD: return "ERROR_IN_CRL_LAST_UPDATE_FIELD";
    case X509_V_ERR_ERROR_IN_CRL_NEXT_UPDATE_FIELD: return "ERROR_IN_CRL_NEXT_UPDATE_FIELD";
    case X509_V_ERR_OUT_OF_MEM: return "OUT_OF_MEM";
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT: return "DEPTH_ZERO_SELF_SIGNED_CERT";
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN: return "SELF_SIGNED_CERT_IN_CHAIN";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY: return "UNABLE_TO_GET_ISSUER_CERT_LOCALLY";
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE: return "UNABLE_TO_VERIFY_LEAF_SIGNATURE";
    case X509_V_ERR_CERT_CHAIN_TOO_LONG: return "CERT_CHAIN_TOO_LONG";
    case X509_V_ERR_CERT_REVOKED: return "CERT_REVOKED";
    case X509_V_ERR_INVALID_CA: return "INVALID_CA";
    case X509_V_ERR_PATH_LENGTH_EXCEEDED: return "PATH_LENGTH_EXCEEDED";
    case X509_V_ERR_INVALID_PURPOSE: return "INVALID_PURPOSE";
    case X509_V_ERR_CERT_UNTRUSTED: return "CERT_UNTRUSTED";
    case X509_V_ERR_CERT_REJECTED: return "CERT_REJECTED";
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
    case X509_V_ERR_EMAIL_MISMATCH: return "ERR_TLS_CERT_ALTNAME_INVALID";
    default: return "CERT_VERIFY_FAILED";
    }
}

const char *net_error_name(int err)
{
    if (err == 0)
        return "OK";
    if (err == NET_E_TLS)
        return "EPROTO";
    if (err <= NET_E_CERT_BASE && err > NET_E_CERT_BASE - 1000)
        return cert_error_name(NET_E_CERT_BASE - err);
    if (err == UV_EAI_NONAME || err == UV_EAI_NODATA)
        return "ENOTFOUND"; /* Node's name for a name that does not resolve */
    if (err < 0 && err > -4096) {
        /* uv_err_name() allocates for unknown codes: check first. */
        char buf[64];
        uv_err_name_r(err, buf, sizeof buf);
        if (strncmp(buf, "Unknown system error", 20) != 0)
            return uv_err_name(err);
    }
    return "EUNKNOWN";
}
