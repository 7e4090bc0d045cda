#include "agent/container_logs.h"

#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <fstream>
#include <mutex>

#include "agent/core/api_json.h"

namespace nodelet::agent {
namespace {

// Go's strconv.ParseBool, which the API server's query decoding uses.
std::optional<bool> parseBool(const std::string& s) {
  if (s == "1" || s == "t" || s == "T" || s == "true" || s == "TRUE" || s == "True") return true;
  if (s == "0" || s == "f" || s == "F" || s == "false" || s == "FALSE" || s == "False")
    return false;
  return std::nullopt;
}

std::optional<int64_t> parseInt(const std::string& s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// An RFC 3339 time with nanoseconds, as containerd writes them into CRI logs.
std::optional<SysTime> parseNanoTime(std::string_view s) {
  auto t = api::parseTime(s);  // second precision
  if (!t) return std::nullopt;
  const size_t dot = s.find('.');
  if (dot == std::string_view::npos) return *t;
  int64_t frac = 0;
  int digits = 0;
  for (size_t i = dot + 1; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i)
    if (digits < 9) {
      frac = frac * 10 + (s[i] - '0');
      ++digits;
    }
  for (; digits < 9; ++digits) frac *= 10;
  return *t + std::chrono::duration_cast<SysTime::duration>(std::chrono::nanoseconds(frac));
}

}  // namespace

Result<LogOptions> parseLogOptions(const std::multimap<std::string, std::string>& params,
                                   SysTime now) {
  LogOptions o;
  auto one = [&](const char* name) -> std::optional<std::string> {
    auto it = params.find(name);
    if (it == params.end()) return std::nullopt;
    return it->second;
  };
  auto boolean = [&](const char* name, bool& out) -> Status {
    if (auto v = one(name)) {
      auto b = parseBool(*v);
      if (!b)
        return fail(ErrorCode::InvalidArgument,
                    std::string(name) + ": invalid boolean \"" + *v + "\"");
      out = *b;
    }
    return {};
  };
  for (auto [name, field] :
       {std::pair{"follow", &o.follow}, {"timestamps", &o.timestamps}, {"previous", &o.previous}})
    if (auto s = boolean(name, *field); !s) return std::unexpected(s.error());
  if (auto v = one("tailLines")) {
    auto n = parseInt(*v);
    if (!n) return fail(ErrorCode::InvalidArgument, "tailLines: invalid integer \"" + *v + "\"");
    if (*n < 0)
      return fail(ErrorCode::InvalidArgument,
                  "tailLines: Invalid value: " + *v + ": must be greater than or equal to 0");
    o.tail_lines = *n;
  }
  if (auto v = one("limitBytes")) {
    auto n = parseInt(*v);
    if (!n) return fail(ErrorCode::InvalidArgument, "limitBytes: invalid integer \"" + *v + "\"");
    if (*n < 1)
      return fail(ErrorCode::InvalidArgument,
                  "limitBytes: Invalid value: " + *v + ": must be greater than 0");
    o.limit_bytes = *n;
  }
  const auto seconds = one("sinceSeconds");
  const auto time = one("sinceTime");
  if (seconds && time)
    return fail(ErrorCode::InvalidArgument,
                "at most one of `sinceTime` or `sinceSeconds` may be specified");
  if (seconds) {
    auto n = parseInt(*seconds);
    if (!n || *n < 1)
      return fail(ErrorCode::InvalidArgument,
                  "sinceSeconds: Invalid value: " + *seconds + ": must be greater than 0");
    o.since = now - std::chrono::seconds(*n);
  }
  if (time) {
    auto t = api::parseTime(*time);
    if (!t) return fail(ErrorCode::InvalidArgument, "sinceTime: " + t.error().message);
    o.since = *t;
  }
  return o;
}

bool LogDecoder::decode(std::string_view in, std::string& out) {
  while (!in.empty() && !limited_) {
    const size_t nl = in.find('\n');
    std::string_view line = in.substr(0, nl);
    in.remove_prefix(nl == std::string_view::npos ? in.size() : nl + 1);
    // "<time> <stream> <tag> <content>": tag "F" ends a line, "P" is a part of one.
    const size_t a = line.find(' ');
    const size_t b = a == std::string_view::npos ? a : line.find(' ', a + 1);
    if (b == std::string_view::npos) continue;  // not a CRI log line: skipped, as the kubelet
    const size_t c = line.find(' ', b + 1);
    const std::string_view ts = line.substr(0, a);
    const std::string_view tag = line.substr(b + 1, c == std::string_view::npos ? c : c - b - 1);
    const std::string_view content =
        c == std::string_view::npos ? std::string_view() : line.substr(c + 1);
    const std::string_view stream = line.substr(a + 1, b - a - 1);
    // As the kubelet's parser: a line without a valid time, stream and tag is skipped.
    if ((stream != "stdout" && stream != "stderr") || tag.empty()) continue;
    const auto t = parseNanoTime(ts);
    if (!t) continue;
    const bool full = tag[0] != 'P';
    if (o_.since && *t < *o_.since) continue;
    std::string msg;
    if (o_.timestamps && at_line_start_) msg.append(ts).push_back(' ');
    msg.append(content);
    if (full) msg.push_back('\n');
    at_line_start_ = full;
    if (o_.limit_bytes && written_ + static_cast<int64_t>(msg.size()) >= *o_.limit_bytes) {
      out.append(msg, 0, static_cast<size_t>(*o_.limit_bytes - written_));
      written_ = *o_.limit_bytes;
      limited_ = true;
      break;
    }
    written_ += static_cast<int64_t>(msg.size());
    out += msg;
  }
  return !limited_;
}

Result<uint64_t> tailOffset(const std::string& path, int64_t lines) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return fail(ErrorCode::NotFound, "cannot open " + path);
  const auto size = static_cast<uint64_t>(in.tellg());
  if (lines <= 0) return size;
  uint64_t pos = size;
  int64_t seen = 0;
  char buf[8192];
  // A file ending in '\n' has its last line's newline at size-1: that one does not count.
  bool skip_last = true;
  while (pos > 0) {
    const uint64_t n = std::min<uint64_t>(pos, sizeof buf);
    pos -= n;
    in.seekg(static_cast<std::streamoff>(pos));
    in.read(buf, static_cast<std::streamsize>(n));
    for (uint64_t i = n; i > 0; --i) {
      if (buf[i - 1] != '\n') {
        skip_last = false;
        continue;
      }
      if (skip_last) {
        skip_last = false;
        continue;
      }
      if (++seen == lines) return pos + i;
    }
  }
  return 0;
}

Status streamLog(const std::string& path, const LogOptions& o,
                 const std::function<bool(std::string_view)>& write,
                 const std::function<bool()>& running, Clock& clock, Duration poll) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(ErrorCode::NotFound, "cannot open log file " + path);
  struct stat opened {};
  ::stat(path.c_str(), &opened);
  if (o.tail_lines) {
    auto off = tailOffset(path, *o.tail_lines);
    if (!off) return std::unexpected(off.error());
    in.seekg(static_cast<std::streamoff>(*off));
  }
  LogDecoder decoder(o);
  std::string pending;  // an incomplete last line, until its newline arrives
  std::string out;
  std::mutex mu;
  std::condition_variable cv;
  char buf[65536];
  bool last_round = false;
  for (uint64_t round = 0; round < (uint64_t{1} << 40); ++round) {
    in.read(buf, sizeof buf);
    const auto n = static_cast<size_t>(in.gcount());
    if (n > 0) {
      pending.append(buf, n);
      const size_t end = pending.rfind('\n');
      if (end != std::string::npos) {
        out.clear();
        const bool more = decoder.decode(std::string_view(pending).substr(0, end + 1), out);
        pending.erase(0, end + 1);
        if (!out.empty() && !write(out)) return {};  // the client went away
        if (!more) return {};                        // limitBytes reached
      }
      if (n == sizeof buf) continue;  // more to read now
    }
    if (!o.follow || last_round) return {};
    in.clear();  // past EOF: wait for more
    struct stat now {};
    if (::stat(path.c_str(), &now) == 0 && now.st_ino != opened.st_ino) {
      // Rotated: finish the old file (done above), go on with the new one from its start.
      in = std::ifstream(path, std::ios::binary);
      opened = now;
      continue;
    }
    if (!running()) {
      last_round = true;  // what was written before the exit, then done
      continue;
    }
    if (!write({})) return {};  // a zero-length write: is the client still there?
    std::unique_lock l(mu);
    clock.waitUntil(cv, l, clock.monotonicNow() + poll);
  }
  return {};
}

}  // namespace nodelet::agent
