#include "agent/pki.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>

#include "agent/openssl_ptr.h"

namespace nodelet::agent {
namespace {

namespace fs = std::filesystem;

using ssl::Cert;
using ssl::Key;

// Whether `path` holds a certificate that is valid at `now` for the next day at least.
bool usable(const std::string& path, SysTime now) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return false;
  Cert c(PEM_read_X509(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  if (!c) return false;
  const time_t t = std::chrono::system_clock::to_time_t(now + std::chrono::hours(24));
  return X509_cmp_time(X509_get0_notAfter(c.get()), const_cast<time_t*>(&t)) > 0;
}

}  // namespace

Result<CertPaths> ensureSelfSignedCert(const std::string& dir, const std::string& host,
                                       const std::vector<std::string>& ips, SysTime now) {
  CertPaths p{dir + "/nodelet.crt", dir + "/nodelet.key"};
  if (usable(p.cert, now) && fs::exists(p.key)) return p;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return fail(ErrorCode::Internal, "create " + dir + ": " + ec.message());

  Key key(EVP_EC_gen("P-256"));
  Cert cert(X509_new());
  if (!key || !cert) return fail(ErrorCode::Internal, "self-signed certificate: out of memory");
  X509_set_version(cert.get(), 2);
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch());
  ASN1_INTEGER_set_int64(X509_get_serialNumber(cert.get()), secs.count());
  const time_t start = std::chrono::system_clock::to_time_t(now - std::chrono::hours(1));
  X509_time_adj_ex(X509_getm_notBefore(cert.get()), 0, 0, const_cast<time_t*>(&start));
  X509_time_adj_ex(X509_getm_notAfter(cert.get()), 365, 0, const_cast<time_t*>(&start));
  const std::string cn = host + "@" + std::to_string(secs.count());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509_set_pubkey(cert.get(), key.get());
  std::string san = "DNS:" + host;
  for (const auto& ip : ips) {
    in6_addr buf{};
    if (inet_pton(AF_INET, ip.c_str(), &buf) == 1 || inet_pton(AF_INET6, ip.c_str(), &buf) == 1)
      san += ",IP:" + ip;
  }
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, cert.get(), cert.get(), nullptr, nullptr, 0);
  for (auto [nid, value] : {std::pair{NID_subject_alt_name, san.c_str()},
                            {NID_basic_constraints, "critical,CA:TRUE"},
                            {NID_key_usage, "critical,digitalSignature,keyCertSign"},
                            {NID_ext_key_usage, "serverAuth"}}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value);
    if (!ext) return fail(ErrorCode::Internal, std::string("self-signed certificate: ") + value);
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0)
    return fail(ErrorCode::Internal, "self-signed certificate: signing failed");

  // Written beside and renamed into place; the key never readable by others.
  const std::string key_tmp = p.key + ".tmp", cert_tmp = p.cert + ".tmp";
  const int fd = ::open(key_tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return fail(ErrorCode::Internal, "write " + key_tmp);
  FILE* kf = ::fdopen(fd, "w");
  const bool key_ok =
      kf && PEM_write_PrivateKey(kf, key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1;
  if (kf) std::fclose(kf);
  FILE* cf = std::fopen(cert_tmp.c_str(), "w");
  const bool cert_ok = cf && PEM_write_X509(cf, cert.get()) == 1;
  if (cf) std::fclose(cf);
  if (!key_ok || !cert_ok) return fail(ErrorCode::Internal, "write the self-signed certificate");
  fs::rename(key_tmp, p.key, ec);
  if (!ec) fs::rename(cert_tmp, p.cert, ec);
  if (ec) return fail(ErrorCode::Internal, "install the self-signed certificate: " + ec.message());
  return p;
}

}  // namespace nodelet::agent
