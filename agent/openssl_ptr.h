#pragma once
// Owning pointers for the OpenSSL objects nodelet's own certificates use (pki.cc,
// client_certificates.cc): freed with OpenSSL's own functions.
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>

namespace nodelet::agent::ssl {

template <class T, void (*F)(T*)>
struct Free {
  void operator()(T* p) const { F(p); }
};
using Key = std::unique_ptr<EVP_PKEY, Free<EVP_PKEY, EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Free<X509, X509_free>>;
using Req = std::unique_ptr<X509_REQ, Free<X509_REQ, X509_REQ_free>>;
using Bio = std::unique_ptr<BIO, Free<BIO, BIO_free_all>>;
using Md = std::unique_ptr<EVP_MD_CTX, Free<EVP_MD_CTX, EVP_MD_CTX_free>>;

}  // namespace nodelet::agent::ssl
