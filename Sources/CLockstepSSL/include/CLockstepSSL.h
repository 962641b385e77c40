// CLockstepSSL — the parts of the system OpenSSL 3 that Lockstep uses, as
// plain functions Swift can call (OpenSSL's macros such as
// SSL_CTX_set_min_proto_version and its variadic calls cannot be). Every
// OpenSSL object stays opaque (`void *`) to Swift; every name carries the
// `lsssl_` prefix.
//
// Errors: a function that fails writes one line saying why into the
// caller's `error` buffer (the OpenSSL error queue and, after a failed
// handshake, the certificate verification result), so nothing depends on
// OpenSSL's thread-local error queue surviving until Swift asks for it.
#ifndef CLOCKSTEP_SSL_H
#define CLOCKSTEP_SSL_H

#include <stddef.h>
#include <stdint.h>

/// How a connection operation ended.
typedef enum lsssl_status {
  /// It succeeded.
  lsssl_ok = 0,
  /// The peer closed the TLS session cleanly (close_notify).
  lsssl_closed = 1,
  /// The socket's timeout (or the handshake deadline) passed.
  lsssl_timed_out = 2,
  /// It failed; `error` says why.
  lsssl_failed = 3,
} lsssl_status;

// MARK: Contexts

/// A TLS 1.3-only context for one side (`server` nonzero: server) that
/// trusts only the CA certificate(s) in `ca_path`, presents the chain in
/// `certificate_path` with the key in `key_path` (PEM files; both empty:
/// no certificate, for tests of refusal), and requires and verifies the
/// peer's certificate (the server fails a client that sends none). NULL on
/// failure.
void *lsssl_context_new(int server, const char *ca_path, const char *certificate_path, const char *key_path,
                        char *error, size_t error_capacity);
/// Frees a context (connections made from it keep it alive until freed).
void lsssl_context_free(void *context);

// MARK: Connections

/// Wraps the connected socket `fd` (not taken: the caller closes it after
/// lsssl_connection_free) for the `server` or client side. NULL on failure.
void *lsssl_connection_new(void *context, int fd, int server, char *error, size_t error_capacity);
/// Runs the handshake with a total deadline of `timeout_ms` milliseconds
/// (the socket is switched to non-blocking for it and back to blocking
/// after), verifying the peer's certificate.
lsssl_status lsssl_handshake(void *connection, int fd, int64_t timeout_ms, char *error, size_t error_capacity);
/// Reads up to `capacity` bytes of application data (blocking, bounded by
/// the socket's SO_RCVTIMEO); `*count` is what was read.
lsssl_status lsssl_read(void *connection, void *buffer, size_t capacity, size_t *count, char *error,
                        size_t error_capacity);
/// Writes up to `count` bytes (blocking, bounded by SO_SNDTIMEO);
/// `*written` is what was written. Never raises SIGPIPE.
lsssl_status lsssl_write(void *connection, const void *bytes, size_t count, size_t *written, char *error,
                         size_t error_capacity);
/// Decrypted bytes buffered inside the connection (readable without
/// touching the socket).
int lsssl_pending(void *connection);
/// Sends close_notify (does not wait for the peer's).
void lsssl_shutdown(void *connection);
/// Frees a connection (not its socket).
void lsssl_connection_free(void *connection);
/// The verified peer certificate's subject commonName and its first
/// organizationalUnitName that starts with "lockstep-" (else its first
/// OU, else ""). Returns 1, or 0 when there is no peer certificate.
int lsssl_peer_identity(void *connection, char *common_name, size_t common_name_capacity, char *unit,
                        size_t unit_capacity);

// MARK: Keys and certificates

/// Generates an EC P-256 private key and writes it as PKCS#8 PEM into
/// `pem`. Returns the PEM's length, or -1 with `error` set.
int lsssl_generate_key(char *pem, size_t pem_capacity, char *error, size_t error_capacity);

/// Issues an X.509 v3 certificate for the key in `subject_key_pem`:
/// subject CN=`common_name`, O=`organization` and OU=`unit` (either may be
/// ""), valid from `not_before` to `not_after` (Unix seconds), a random
/// 127-bit serial, signed with SHA-256 by `issuer_key_pem`.
///
/// `authority` nonzero: a CA certificate (basicConstraints critical
/// CA:TRUE, pathlen:0; keyUsage keyCertSign, cRLSign); `issuer_*` may then
/// be "" for a self-signed one. Otherwise a node certificate
/// (basicConstraints CA:FALSE; keyUsage digitalSignature; extendedKeyUsage
/// serverAuth, clientAuth; subjectAltName `alt_names` in OpenSSL's syntax,
/// e.g. "DNS:vmm1,DNS:localhost,IP:127.0.0.1").
///
/// Writes the certificate's PEM into `pem`; returns its length, or -1 with
/// `error` set.
int lsssl_issue_certificate(const char *subject_key_pem, const char *common_name, const char *organization,
                            const char *unit, const char *alt_names, int authority, int64_t not_before,
                            int64_t not_after, const char *issuer_certificate_pem, const char *issuer_key_pem,
                            char *pem, size_t pem_capacity, char *error, size_t error_capacity);

/// Reads the first certificate of the PEM file `path`: its subject
/// commonName, its role OU (as lsssl_peer_identity), and its validity
/// (Unix seconds). Returns 1, or 0 with `error` set.
int lsssl_certificate_file_summary(const char *path, char *common_name, size_t common_name_capacity, char *unit,
                                   size_t unit_capacity, int64_t *not_before, int64_t *not_after, char *error,
                                   size_t error_capacity);

/// Checks that the PEM private key `key_path` belongs to the certificate
/// in `certificate_path` and that the certificate was issued by the CA in
/// `ca_path` and is valid at `at_time` (Unix seconds). Returns 1, or 0
/// with `error` set.
int lsssl_check_credentials(const char *ca_path, const char *certificate_path, const char *key_path, int64_t at_time,
                            char *error, size_t error_capacity);

// MARK: Digests

/// The SHA-256 of `count` bytes into `digest` (32 bytes). Returns 1, or 0.
int lsssl_sha256(const void *bytes, size_t count, uint8_t *digest);
/// HMAC-SHA256 of `count` bytes keyed with `key`: 32 bytes into `digest`.
/// Returns 1 on success.
int lsssl_hmac_sha256(const void *key, size_t key_length, const void *bytes, size_t count, uint8_t *digest);
/// Compares `count` bytes in constant time (CRYPTO_memcmp): 1 if equal.
int lsssl_constant_time_equal(const void *first, const void *second, size_t count);

#endif
