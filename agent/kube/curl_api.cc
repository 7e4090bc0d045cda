#include "agent/kube/curl_api.h"

#include <dlfcn.h>

#include <string>

namespace nodelet::kube {
namespace {

Result<const CurlApi*> load() {
  void* lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* why = dlerror();
    return fail(
        ErrorCode::Unavailable,
        std::string("cluster mode needs libcurl (libcurl.so.4, Debian package libcurl4): ") +
            (why ? why : "not found"));
  }
  static CurlApi api;
  std::string missing;
  auto sym = [&](auto& fn, const char* name) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
    if (!fn) missing += std::string(missing.empty() ? "" : ", ") + name;
  };
  sym(api.global_init, "curl_global_init");
  sym(api.easy_init, "curl_easy_init");
  sym(api.easy_setopt, "curl_easy_setopt");
  sym(api.easy_perform, "curl_easy_perform");
  sym(api.easy_getinfo, "curl_easy_getinfo");
  sym(api.easy_cleanup, "curl_easy_cleanup");
  sym(api.easy_strerror, "curl_easy_strerror");
  sym(api.slist_append, "curl_slist_append");
  sym(api.slist_free_all, "curl_slist_free_all");
  sym(api.share_init, "curl_share_init");
  sym(api.share_setopt, "curl_share_setopt");
  sym(api.share_cleanup, "curl_share_cleanup");
  if (!missing.empty()) return fail(ErrorCode::Unavailable, "libcurl.so.4 lacks " + missing);
  if (api.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return fail(ErrorCode::Unavailable, "curl_global_init failed");
  return &api;
}

}  // namespace

Result<const CurlApi*> curlApi() {
  static const Result<const CurlApi*> api = load();  // thread-safe, once
  return api;
}

}  // namespace nodelet::kube
