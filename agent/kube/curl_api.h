#pragma once
// libcurl, loaded when cluster mode first needs it (dlopen of libcurl.so.4, from Debian's
// libcurl4). A standalone nodelet never maps libcurl and the ~30 libraries it pulls in (GnuTLS,
// Kerberos, LDAP, ...), which cost ~4 MiB of RSS on every node that does not talk to an API
// server. Only the headers are used at build time.
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>

#include "agent/core/error.h"

namespace nodelet::kube {

struct CurlApi {
  decltype(&curl_global_init) global_init;
  decltype(&curl_easy_init) easy_init;
  decltype(&curl_easy_setopt) easy_setopt;
  decltype(&curl_easy_perform) easy_perform;
  decltype(&curl_easy_getinfo) easy_getinfo;
  decltype(&curl_easy_cleanup) easy_cleanup;
  decltype(&curl_easy_strerror) easy_strerror;
  decltype(&curl_slist_append) slist_append;
  decltype(&curl_slist_free_all) slist_free_all;
  decltype(&curl_share_init) share_init;
  decltype(&curl_share_setopt) share_setopt;
  decltype(&curl_share_cleanup) share_cleanup;
};

// The loaded library (curl_global_init done), or why it cannot be loaded. Thread-safe; loaded once.
Result<const CurlApi*> curlApi();

}  // namespace nodelet::kube
