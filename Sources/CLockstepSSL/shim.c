#define _GNU_SOURCE
#include "CLockstepSSL.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

// MARK: Error text

static void set_error(char *error, size_t capacity, const char *format, ...) {
  if (!error || capacity == 0) return;
  va_list arguments;
  va_start(arguments, format);
  vsnprintf(error, capacity, format, arguments);
  va_end(arguments);
}

static void append_error(char *error, size_t capacity, const char *format, ...) {
  if (!error || capacity == 0) return;
  size_t used = strnlen(error, capacity);
  if (used + 1 >= capacity) return;
  va_list arguments;
  va_start(arguments, format);
  vsnprintf(error + used, capacity - used, format, arguments);
  va_end(arguments);
}

/// A hint for OpenSSL reasons whose own text does not say what to do.
static const char *reason_hint(unsigned long code) {
  if (ERR_GET_LIB(code) == ERR_LIB_PEM && ERR_GET_REASON(code) == PEM_R_NO_START_LINE)
    return "the file holds no PEM block of the expected kind";
  if (ERR_GET_LIB(code) != ERR_LIB_SSL) return NULL;
  switch (ERR_GET_REASON(code)) {
  case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    return "the peer does not trust our certificate: it was not signed by the peer's cluster CA";
  case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    return "the peer requires a certificate and we presented none";
  case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    return "the peer says our certificate has expired";
  case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    return "the peer rejected our certificate";
  case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    return "the peer presented no certificate";
  case SSL_R_HTTP_REQUEST:
  case SSL_R_WRONG_VERSION_NUMBER:
  case SSL_R_PACKET_LENGTH_TOO_LONG:
  case SSL_R_RECORD_LENGTH_MISMATCH:
    return "the peer does not speak TLS";
  case SSL_R_UNSUPPORTED_PROTOCOL:
  case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
    return "Lockstep requires TLS 1.3 on both sides";
  case SSL_R_UNEXPECTED_EOF_WHILE_READING:
    return "the peer closed the connection";
  default:
    return NULL;
  }
}

/// Appends the OpenSSL error queue (at most three distinct reasons, with
/// hints) to `error`, emptying the queue. Returns how many were appended.
static int append_queue(char *error, size_t capacity) {
  unsigned long seen[3] = {0, 0, 0};
  int count = 0;
  unsigned long code;
  while ((code = ERR_get_error()) != 0) {
    if (count == 3) continue;
    if (ERR_SYSTEM_ERROR(code)) {
      append_error(error, capacity, "%s%s", count ? "; " : "", strerror(ERR_GET_REASON(code)));
      count++;
      continue;
    }
    // Skip "PEM lib", "system lib"...: pointers to the error that follows.
    int number = ERR_GET_REASON(code);
    if ((number & ERR_RFLAG_COMMON) && (number & ~(ERR_RFLAGS_MASK << ERR_RFLAGS_OFFSET)) < 64) continue;
    unsigned long packed = ERR_PACK(ERR_GET_LIB(code), 0, ERR_GET_REASON(code));
    int duplicate = 0;
    for (int i = 0; i < count; i++) duplicate |= seen[i] == packed;
    if (duplicate) continue;
    seen[count] = packed;
    const char *reason = ERR_reason_error_string(code);
    char fallback[256];
    if (!reason) {
      ERR_error_string_n(code, fallback, sizeof fallback);
      reason = fallback;
    }
    append_error(error, capacity, "%s%s", count ? "; " : "", reason);
    const char *hint = reason_hint(code);
    if (hint) append_error(error, capacity, " (%s)", hint);
    count++;
  }
  return count;
}

/// Sets `error` to `what` followed by the OpenSSL error queue.
static void set_openssl_error(char *error, size_t capacity, const char *what) {
  set_error(error, capacity, "%s", what);
  size_t before = strnlen(error, capacity);
  append_error(error, capacity, ": ");
  if (append_queue(error, capacity) == 0 && error && capacity > before) error[before] = 0;
}

/// Explains a certificate verification result in the terms of the cluster.
static void append_verify_result(char *error, size_t capacity, long result) {
  const char *text = X509_verify_cert_error_string(result);
  switch (result) {
  case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
  case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
  case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
  case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
  case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
  case X509_V_ERR_CERT_SIGNATURE_FAILURE:
    append_error(error, capacity, " (peer certificate not signed by the cluster CA: %s)", text);
    break;
  case X509_V_ERR_CERT_HAS_EXPIRED:
    append_error(error, capacity, " (peer certificate has expired)");
    break;
  case X509_V_ERR_CERT_NOT_YET_VALID:
    append_error(error, capacity, " (peer certificate is not valid yet: check the clocks)");
    break;
  default:
    append_error(error, capacity, " (peer certificate rejected: %s)", text);
    break;
  }
}

/// Describes why `ssl` operation returning `result` failed, given the
/// errno saved right after it.
static lsssl_status describe_failure(SSL *ssl, int result, int saved_errno, char *error, size_t capacity) {
  int code = SSL_get_error(ssl, result);
  set_error(error, capacity, "%s", "");
  if (code == SSL_ERROR_ZERO_RETURN) return lsssl_closed;
  if (code == SSL_ERROR_SYSCALL) {
    if (append_queue(error, capacity) > 0) return lsssl_failed;
    if (saved_errno != 0) {
      set_error(error, capacity, "%s", strerror(saved_errno));
    } else {
      set_error(error, capacity, "the peer closed the connection");
    }
    return lsssl_failed;
  }
  if (append_queue(error, capacity) == 0) set_error(error, capacity, "TLS error %d", code);
  long verify = SSL_get_verify_result(ssl);
  if (verify != X509_V_OK) append_verify_result(error, capacity, verify);
  return lsssl_failed;
}

// MARK: A socket BIO that never raises SIGPIPE

// OpenSSL's socket BIO writes with write(2), which raises SIGPIPE (and so
// kills the process) when the peer has gone. This one sends with
// MSG_NOSIGNAL.

typedef struct socket_state {
  int fd;
  int eof;
} socket_state;

static int socket_write(BIO *bio, const char *data, int length) {
  socket_state *state = BIO_get_data(bio);
  ssize_t sent = send(state->fd, data, (size_t)length, MSG_NOSIGNAL);
  BIO_clear_retry_flags(bio);
  if (sent < 0 && BIO_sock_non_fatal_error(errno)) BIO_set_retry_write(bio);
  return (int)sent;
}

static int socket_read(BIO *bio, char *data, int length) {
  if (!data) return 0;
  socket_state *state = BIO_get_data(bio);
  ssize_t got = recv(state->fd, data, (size_t)length, 0);
  BIO_clear_retry_flags(bio);
  if (got < 0 && BIO_sock_non_fatal_error(errno)) BIO_set_retry_read(bio);
  if (got == 0) state->eof = 1;
  return (int)got;
}

static long socket_control(BIO *bio, int command, long number, void *pointer) {
  (void)number;
  socket_state *state = BIO_get_data(bio);
  switch (command) {
  case BIO_CTRL_FLUSH:
    return 1;
  case BIO_CTRL_EOF:
    return state->eof;
  case BIO_C_GET_FD:
    if (pointer) *(int *)pointer = state->fd;
    return state->fd;
  default:
    return 0;
  }
}

static int socket_create(BIO *bio) {
  socket_state *state = calloc(1, sizeof *state);
  if (!state) return 0;
  state->fd = -1;
  BIO_set_data(bio, state);
  BIO_set_init(bio, 1);
  return 1;
}

static int socket_destroy(BIO *bio) {
  free(BIO_get_data(bio));
  BIO_set_data(bio, NULL);
  return 1;
}

static BIO_METHOD *socket_method;
static pthread_once_t socket_method_once = PTHREAD_ONCE_INIT;

static void make_socket_method(void) {
  int index = BIO_get_new_index();
  if (index < 0) return;
  BIO_METHOD *method = BIO_meth_new(index | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "lockstep socket");
  if (!method) return;
  if (!BIO_meth_set_write(method, socket_write) || !BIO_meth_set_read(method, socket_read) ||
      !BIO_meth_set_ctrl(method, socket_control) || !BIO_meth_set_create(method, socket_create) ||
      !BIO_meth_set_destroy(method, socket_destroy)) {
    BIO_meth_free(method);
    return;
  }
  socket_method = method;
}

static BIO *socket_bio(int fd) {
  pthread_once(&socket_method_once, make_socket_method);
  if (!socket_method) return NULL;
  BIO *bio = BIO_new(socket_method);
  if (!bio) return NULL;
  socket_state *state = BIO_get_data(bio);
  state->fd = fd;
  return bio;
}

// MARK: Contexts

void *lsssl_context_new(int server, const char *ca_path, const char *certificate_path, const char *key_path,
                        char *error, size_t error_capacity) {
  ERR_clear_error();
  SSL_CTX *context = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (!context) {
    set_openssl_error(error, error_capacity, "cannot create a TLS context");
    return NULL;
  }
  char what[PATH_MAX + 64];
  const char *files[3] = {ca_path, certificate_path, key_path};
  for (int i = 0; i < 3; i++) {
    if (files[i][0] && access(files[i], R_OK) != 0) {
      set_error(error, error_capacity, "cannot read %s: %s", files[i], strerror(errno));
      goto fail;
    }
  }
  if (!SSL_CTX_set_min_proto_version(context, TLS1_3_VERSION) ||
      !SSL_CTX_set_max_proto_version(context, TLS1_3_VERSION)) {
    set_openssl_error(error, error_capacity, "cannot restrict the TLS context to TLS 1.3");
    goto fail;
  }
  if (SSL_CTX_load_verify_locations(context, ca_path, NULL) != 1) {
    snprintf(what, sizeof what, "cannot load the CA certificate %s", ca_path);
    set_openssl_error(error, error_capacity, what);
    goto fail;
  }
  if (certificate_path[0] || key_path[0]) {
    if (SSL_CTX_use_certificate_chain_file(context, certificate_path) != 1) {
      snprintf(what, sizeof what, "cannot load the certificate %s", certificate_path);
      set_openssl_error(error, error_capacity, what);
      goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(context, key_path, SSL_FILETYPE_PEM) != 1) {
      if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
        snprintf(what, sizeof what, "the key %s does not belong to the certificate %s", key_path, certificate_path);
        set_error(error, error_capacity, "%s", what);
        goto fail;
      }
      snprintf(what, sizeof what, "cannot load the private key %s", key_path);
      set_openssl_error(error, error_capacity, what);
      goto fail;
    }
    if (SSL_CTX_check_private_key(context) != 1) {
      snprintf(what, sizeof what, "the key %s does not belong to the certificate %s", key_path, certificate_path);
      set_openssl_error(error, error_capacity, what);
      goto fail;
    }
  }
  SSL_CTX_set_verify(context, SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
  SSL_CTX_set_verify_depth(context, 2);
  // Send only our own certificate: every peer has the CA certificate.
  SSL_CTX_set_mode(context, SSL_MODE_NO_AUTO_CHAIN);
  if (server) {
    STACK_OF(X509_NAME) *authorities = SSL_load_client_CA_file(ca_path);
    if (authorities) SSL_CTX_set_client_CA_list(context, authorities);
  }
  // No resumption: every connection authenticates with its certificate.
  SSL_CTX_set_session_cache_mode(context, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(context, SSL_OP_NO_TICKET);
  SSL_CTX_set_num_tickets(context, 0);
  ERR_clear_error();
  return context;
fail:
  SSL_CTX_free(context);
  return NULL;
}

void lsssl_context_free(void *context) { SSL_CTX_free(context); }

// MARK: Connections

void *lsssl_connection_new(void *context, int fd, int server, char *error, size_t error_capacity) {
  ERR_clear_error();
  SSL *ssl = SSL_new(context);
  if (!ssl) {
    set_openssl_error(error, error_capacity, "SSL_new failed");
    return NULL;
  }
  BIO *bio = socket_bio(fd);
  if (!bio) {
    set_openssl_error(error, error_capacity, "cannot create a socket BIO");
    SSL_free(ssl);
    return NULL;
  }
  SSL_set_bio(ssl, bio, bio);
  if (server) {
    SSL_set_accept_state(ssl);
  } else {
    SSL_set_connect_state(ssl);
  }
  return ssl;
}

static int64_t monotonic_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

lsssl_status lsssl_handshake(void *connection, int fd, int64_t timeout_ms, char *error, size_t error_capacity) {
  SSL *ssl = connection;
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    set_error(error, error_capacity, "fcntl: %s", strerror(errno));
    return lsssl_failed;
  }
  int64_t deadline = monotonic_ms() + (timeout_ms > 0 ? timeout_ms : 0);
  lsssl_status status = lsssl_failed;
  for (;;) {
    ERR_clear_error();
    errno = 0;
    int result = SSL_do_handshake(ssl);
    if (result == 1) {
      status = lsssl_ok;
      break;
    }
    int saved = errno;
    int code = SSL_get_error(ssl, result);
    short events;
    if (code == SSL_ERROR_WANT_READ) {
      events = POLLIN;
    } else if (code == SSL_ERROR_WANT_WRITE) {
      events = POLLOUT;
    } else {
      status = describe_failure(ssl, result, saved, error, error_capacity);
      if (status == lsssl_closed) {
        set_error(error, error_capacity, "the peer closed the connection");
        status = lsssl_failed;
      }
      break;
    }
    int64_t left = deadline - monotonic_ms();
    if (left <= 0) {
      set_error(error, error_capacity, "no complete handshake from the peer within %lld ms", (long long)timeout_ms);
      status = lsssl_timed_out;
      break;
    }
    struct pollfd wait = {.fd = fd, .events = events};
    if (poll(&wait, 1, left > INT_MAX ? INT_MAX : (int)left) < 0 && errno != EINTR) {
      set_error(error, error_capacity, "poll: %s", strerror(errno));
      break;
    }
  }
  if (fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0 && status == lsssl_ok) {
    set_error(error, error_capacity, "fcntl: %s", strerror(errno));
    status = lsssl_failed;
  }
  return status;
}

/// Signals that interrupt a blocking read or write are retried this often.
enum { interruptions_tolerated = 64 };

lsssl_status lsssl_read(void *connection, void *buffer, size_t capacity, size_t *count, char *error,
                        size_t error_capacity) {
  SSL *ssl = connection;
  *count = 0;
  for (int attempt = 0; attempt < interruptions_tolerated; attempt++) {
    ERR_clear_error();
    errno = 0;
    int result = SSL_read_ex(ssl, buffer, capacity, count);
    if (result == 1) return lsssl_ok;
    int saved = errno;
    int code = SSL_get_error(ssl, result);
    if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) {
      if (saved == EINTR) continue;
      set_error(error, error_capacity, "timed out");
      return lsssl_timed_out;
    }
    return describe_failure(ssl, result, saved, error, error_capacity);
  }
  set_error(error, error_capacity, "interrupted too often");
  return lsssl_failed;
}

lsssl_status lsssl_write(void *connection, const void *bytes, size_t count, size_t *written, char *error,
                         size_t error_capacity) {
  SSL *ssl = connection;
  *written = 0;
  for (int attempt = 0; attempt < interruptions_tolerated; attempt++) {
    ERR_clear_error();
    errno = 0;
    int result = SSL_write_ex(ssl, bytes, count, written);
    if (result == 1) return lsssl_ok;
    int saved = errno;
    int code = SSL_get_error(ssl, result);
    if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) {
      if (saved == EINTR) continue;
      set_error(error, error_capacity, "timed out");
      return lsssl_timed_out;
    }
    lsssl_status status = describe_failure(ssl, result, saved, error, error_capacity);
    if (status == lsssl_closed) set_error(error, error_capacity, "the peer closed the connection");
    return lsssl_failed;
  }
  set_error(error, error_capacity, "interrupted too often");
  return lsssl_failed;
}

int lsssl_pending(void *connection) { return SSL_pending(connection); }

void lsssl_shutdown(void *connection) {
  ERR_clear_error();
  (void)SSL_shutdown(connection);
  ERR_clear_error();
}

void lsssl_connection_free(void *connection) { SSL_free(connection); }

/// Copies the subject entry `nid` into `out`: the first one that starts
/// with `prefix` (if given), else the first one.
static void copy_name_entry(const X509_NAME *name, int nid, const char *prefix, char *out, size_t capacity) {
  if (capacity == 0) return;
  out[0] = 0;
  int index = -1;
  int first = 1;
  while ((index = X509_NAME_get_index_by_NID(name, nid, index)) >= 0) {
    const ASN1_STRING *data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
    unsigned char *text = NULL;
    int length = ASN1_STRING_to_UTF8(&text, data);
    if (length < 0) continue;
    int usable = memchr(text, 0, (size_t)length) == NULL;
    int matches = usable && prefix && strncmp((const char *)text, prefix, strlen(prefix)) == 0;
    if (usable && (matches || first)) {
      size_t copied = (size_t)length < capacity - 1 ? (size_t)length : capacity - 1;
      memcpy(out, text, copied);
      out[copied] = 0;
      first = 0;
    }
    OPENSSL_free(text);
    if (matches || !prefix) break;
  }
}

static const char *role_prefix = "lockstep-";

int lsssl_peer_identity(void *connection, char *common_name, size_t common_name_capacity, char *unit,
                        size_t unit_capacity) {
  X509 *peer = SSL_get0_peer_certificate(connection);
  if (!peer) return 0;
  const X509_NAME *subject = X509_get_subject_name(peer);
  copy_name_entry(subject, NID_commonName, NULL, common_name, common_name_capacity);
  copy_name_entry(subject, NID_organizationalUnitName, role_prefix, unit, unit_capacity);
  return 1;
}

// MARK: Keys and certificates

/// Copies the contents of a memory BIO into `out` (NUL-terminated);
/// returns the length or -1 when it does not fit.
static int copy_bio(BIO *bio, char *out, size_t capacity, char *error, size_t error_capacity) {
  char *data = NULL;
  long length = BIO_get_mem_data(bio, &data);
  if (length < 0 || (size_t)length + 1 > capacity) {
    set_error(error, error_capacity, "PEM output does not fit in %zu bytes", capacity);
    return -1;
  }
  memcpy(out, data, (size_t)length);
  out[length] = 0;
  return (int)length;
}

int lsssl_generate_key(char *pem, size_t pem_capacity, char *error, size_t error_capacity) {
  ERR_clear_error();
  EVP_PKEY *key = EVP_EC_gen("P-256");
  if (!key) {
    set_openssl_error(error, error_capacity, "cannot generate an EC P-256 key");
    return -1;
  }
  int length = -1;
  BIO *out = BIO_new(BIO_s_mem());
  if (out && PEM_write_bio_PrivateKey(out, key, NULL, NULL, 0, NULL, NULL) == 1) {
    length = copy_bio(out, pem, pem_capacity, error, error_capacity);
  } else {
    set_openssl_error(error, error_capacity, "cannot encode the key");
  }
  BIO_free(out);
  EVP_PKEY_free(key);
  return length;
}

static EVP_PKEY *read_key(const char *pem) {
  BIO *in = BIO_new_mem_buf(pem, -1);
  if (!in) return NULL;
  EVP_PKEY *key = PEM_read_bio_PrivateKey(in, NULL, NULL, NULL);
  BIO_free(in);
  return key;
}

static X509 *read_certificate(const char *pem) {
  BIO *in = BIO_new_mem_buf(pem, -1);
  if (!in) return NULL;
  X509 *certificate = PEM_read_bio_X509(in, NULL, NULL, NULL);
  BIO_free(in);
  return certificate;
}

static int add_extension(X509 *certificate, X509V3_CTX *context, int nid, const char *value, char *error,
                         size_t error_capacity) {
  X509_EXTENSION *extension = X509V3_EXT_nconf_nid(NULL, context, nid, value);
  if (!extension) {
    char what[512];
    snprintf(what, sizeof what, "invalid certificate extension %s = %s", OBJ_nid2sn(nid), value);
    set_openssl_error(error, error_capacity, what);
    return 0;
  }
  int added = X509_add_ext(certificate, extension, -1);
  X509_EXTENSION_free(extension);
  if (!added) set_openssl_error(error, error_capacity, "cannot add a certificate extension");
  return added;
}

static int add_name_entry(X509_NAME *name, const char *field, const char *value, char *error,
                          size_t error_capacity) {
  if (!value[0]) return 1;
  if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8, (const unsigned char *)value, -1, -1, 0) == 1) return 1;
  char what[256];
  snprintf(what, sizeof what, "invalid subject %s '%s'", field, value);
  set_openssl_error(error, error_capacity, what);
  return 0;
}

static int set_random_serial(X509 *certificate) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return 0;
  bytes[0] &= 0x7f;
  bytes[0] |= 0x01;  // positive and never zero
  BIGNUM *number = BN_bin2bn(bytes, sizeof bytes, NULL);
  if (!number) return 0;
  int ok = BN_to_ASN1_INTEGER(number, X509_get_serialNumber(certificate)) != NULL;
  BN_free(number);
  return ok;
}

int lsssl_issue_certificate(const char *subject_key_pem, const char *common_name, const char *organization,
                            const char *unit, const char *alt_names, int authority, int64_t not_before,
                            int64_t not_after, const char *issuer_certificate_pem, const char *issuer_key_pem,
                            char *pem, size_t pem_capacity, char *error, size_t error_capacity) {
  ERR_clear_error();
  int length = -1;
  EVP_PKEY *subject_key = read_key(subject_key_pem);
  EVP_PKEY *issuer_key = issuer_key_pem[0] ? read_key(issuer_key_pem) : NULL;
  X509 *issuer = issuer_certificate_pem[0] ? read_certificate(issuer_certificate_pem) : NULL;
  X509 *certificate = X509_new();
  BIO *out = NULL;
  if (!subject_key) {
    set_openssl_error(error, error_capacity, "cannot read the subject's key");
    goto done;
  }
  if (issuer_key_pem[0] && !issuer_key) {
    set_openssl_error(error, error_capacity, "cannot read the issuer's key");
    goto done;
  }
  if (issuer_certificate_pem[0] && !issuer) {
    set_openssl_error(error, error_capacity, "cannot read the issuer's certificate");
    goto done;
  }
  if (!issuer && !authority) {
    set_error(error, error_capacity, "a node certificate needs an issuer");
    goto done;
  }
  if (issuer && (!issuer_key || X509_check_private_key(issuer, issuer_key) != 1)) {
    set_openssl_error(error, error_capacity, "the issuer's key does not belong to the issuer's certificate");
    goto done;
  }
  if (!certificate || !X509_set_version(certificate, X509_VERSION_3) || !set_random_serial(certificate) ||
      !X509_set_pubkey(certificate, subject_key) ||
      !ASN1_TIME_set(X509_getm_notBefore(certificate), (time_t)not_before) ||
      !ASN1_TIME_set(X509_getm_notAfter(certificate), (time_t)not_after)) {
    set_openssl_error(error, error_capacity, "cannot fill in the certificate");
    goto done;
  }
  X509_NAME *subject = X509_get_subject_name(certificate);
  if (!add_name_entry(subject, "O", organization, error, error_capacity) ||
      !add_name_entry(subject, "OU", unit, error, error_capacity) ||
      !add_name_entry(subject, "CN", common_name, error, error_capacity)) {
    goto done;
  }
  if (!X509_set_issuer_name(certificate, issuer ? X509_get_subject_name(issuer) : subject)) {
    set_openssl_error(error, error_capacity, "cannot set the issuer's name");
    goto done;
  }
  X509V3_CTX context;
  X509V3_set_ctx(&context, issuer ? issuer : certificate, certificate, NULL, NULL, 0);
  int extended;
  if (authority) {
    extended = add_extension(certificate, &context, NID_basic_constraints, "critical,CA:TRUE,pathlen:0", error,
                             error_capacity) &&
               add_extension(certificate, &context, NID_key_usage, "critical,keyCertSign,cRLSign", error,
                             error_capacity) &&
               add_extension(certificate, &context, NID_subject_key_identifier, "hash", error, error_capacity);
  } else {
    extended =
        add_extension(certificate, &context, NID_basic_constraints, "critical,CA:FALSE", error, error_capacity) &&
        add_extension(certificate, &context, NID_key_usage, "critical,digitalSignature", error, error_capacity) &&
        add_extension(certificate, &context, NID_ext_key_usage, "serverAuth,clientAuth", error, error_capacity) &&
        add_extension(certificate, &context, NID_subject_key_identifier, "hash", error, error_capacity) &&
        add_extension(certificate, &context, NID_authority_key_identifier, "keyid:always", error,
                      error_capacity) &&
        (!alt_names[0] ||
         add_extension(certificate, &context, NID_subject_alt_name, alt_names, error, error_capacity));
  }
  if (!extended) goto done;
  if (X509_sign(certificate, issuer_key ? issuer_key : subject_key, EVP_sha256()) <= 0) {
    set_openssl_error(error, error_capacity, "cannot sign the certificate");
    goto done;
  }
  out = BIO_new(BIO_s_mem());
  if (!out || PEM_write_bio_X509(out, certificate) != 1) {
    set_openssl_error(error, error_capacity, "cannot encode the certificate");
    goto done;
  }
  length = copy_bio(out, pem, pem_capacity, error, error_capacity);
done:
  BIO_free(out);
  X509_free(certificate);
  X509_free(issuer);
  EVP_PKEY_free(issuer_key);
  EVP_PKEY_free(subject_key);
  ERR_clear_error();
  return length;
}

static int64_t unix_time(const ASN1_TIME *time) {
  struct tm parts;
  memset(&parts, 0, sizeof parts);
  if (ASN1_TIME_to_tm(time, &parts) != 1) return 0;
  return (int64_t)timegm(&parts);
}

static X509 *read_certificate_file(const char *path, char *error, size_t error_capacity) {
  BIO *in = BIO_new_file(path, "r");
  if (!in) {
    set_error(error, error_capacity, "cannot open %s: %s", path, strerror(errno));
    ERR_clear_error();
    return NULL;
  }
  X509 *certificate = PEM_read_bio_X509(in, NULL, NULL, NULL);
  BIO_free(in);
  if (!certificate) {
    char what[PATH_MAX + 64];
    snprintf(what, sizeof what, "%s holds no PEM certificate", path);
    set_openssl_error(error, error_capacity, what);
  }
  return certificate;
}

int lsssl_certificate_file_summary(const char *path, char *common_name, size_t common_name_capacity, char *unit,
                                   size_t unit_capacity, int64_t *not_before, int64_t *not_after, char *error,
                                   size_t error_capacity) {
  ERR_clear_error();
  X509 *certificate = read_certificate_file(path, error, error_capacity);
  if (!certificate) return 0;
  const X509_NAME *subject = X509_get_subject_name(certificate);
  copy_name_entry(subject, NID_commonName, NULL, common_name, common_name_capacity);
  copy_name_entry(subject, NID_organizationalUnitName, role_prefix, unit, unit_capacity);
  *not_before = unix_time(X509_get0_notBefore(certificate));
  *not_after = unix_time(X509_get0_notAfter(certificate));
  X509_free(certificate);
  return 1;
}

int lsssl_check_credentials(const char *ca_path, const char *certificate_path, const char *key_path, int64_t at_time,
                            char *error, size_t error_capacity) {
  ERR_clear_error();
  int ok = 0;
  X509 *certificate = read_certificate_file(certificate_path, error, error_capacity);
  EVP_PKEY *key = NULL;
  X509_STORE *store = NULL;
  X509_STORE_CTX *verification = NULL;
  char what[2 * PATH_MAX + 64];
  if (!certificate) goto done;
  BIO *in = BIO_new_file(key_path, "r");
  if (!in) {
    set_error(error, error_capacity, "cannot open %s: %s", key_path, strerror(errno));
    goto done;
  }
  key = PEM_read_bio_PrivateKey(in, NULL, NULL, NULL);
  BIO_free(in);
  if (!key) {
    snprintf(what, sizeof what, "%s holds no PEM private key", key_path);
    set_openssl_error(error, error_capacity, what);
    goto done;
  }
  if (X509_check_private_key(certificate, key) != 1) {
    snprintf(what, sizeof what, "the key %s does not belong to the certificate %s", key_path, certificate_path);
    set_openssl_error(error, error_capacity, what);
    goto done;
  }
  store = X509_STORE_new();
  if (!store || X509_STORE_load_file(store, ca_path) != 1) {
    snprintf(what, sizeof what, "cannot load the CA certificate %s", ca_path);
    set_openssl_error(error, error_capacity, what);
    goto done;
  }
  verification = X509_STORE_CTX_new();
  if (!verification || X509_STORE_CTX_init(verification, store, certificate, NULL) != 1) {
    set_openssl_error(error, error_capacity, "cannot set up certificate verification");
    goto done;
  }
  X509_STORE_CTX_set_time(verification, 0, (time_t)at_time);
  if (X509_verify_cert(verification) != 1) {
    int result = X509_STORE_CTX_get_error(verification);
    set_error(error, error_capacity, "%s is not valid for the CA in %s: %s", certificate_path, ca_path,
              X509_verify_cert_error_string(result));
    goto done;
  }
  ok = 1;
done:
  X509_STORE_CTX_free(verification);
  X509_STORE_free(store);
  EVP_PKEY_free(key);
  X509_free(certificate);
  ERR_clear_error();
  return ok;
}

// MARK: Digests

int lsssl_sha256(const void *bytes, size_t count, uint8_t *digest) {
  unsigned int length = 0;
  return EVP_Digest(bytes, count, digest, &length, EVP_sha256(), NULL) == 1 && length == 32;
}

int lsssl_hmac_sha256(const void *key, size_t key_length, const void *bytes, size_t count, uint8_t *digest) {
  static const uint8_t empty = 0;
  unsigned int length = 0;
  if (key_length > INT_MAX) return 0;
  return HMAC(EVP_sha256(), key_length ? key : &empty, (int)key_length, count ? bytes : &empty, count, digest,
              &length) != NULL &&
         length == 32;
}

int lsssl_constant_time_equal(const void *first, const void *second, size_t count) {
  return CRYPTO_memcmp(first, second, count) == 0;
}
