#pragma once
// Just enough of a WebSocket client (RFC 6455) over a RawClient for the Kubernetes channel
// protocols (v4.channel.k8s.io): each binary message starts with its channel byte. Client frames
// are masked; server frames are read whole. For tests only.
#include <cstdint>
#include <optional>
#include <random>
#include <string>

#include "tests/common/raw_client.h"

namespace nodelet::testing {

class WebSocketClient {
 public:
  explicit WebSocketClient(RawClient& c) : c_(c) {}

  // Sends the opening handshake for `path` asking for `protocol`; returns the response head.
  std::string open(const std::string& path, const std::string& protocol) {
    c_.write("GET " + path +
             " HTTP/1.1\r\nHost: node\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
             "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             "Sec-WebSocket-Protocol: " +
             protocol + "\r\n\r\n");
    return c_.readHead(buf_);
  }

  // A binary message on `channel`.
  bool send(uint8_t channel, const std::string& data) {
    std::string payload(1, static_cast<char>(channel));
    payload += data;
    std::string f(1, static_cast<char>(0x82));  // FIN, binary
    const uint64_t n = payload.size();
    if (n < 126) {
      f += static_cast<char>(0x80 | n);
    } else {
      f += static_cast<char>(0x80 | 126);
      f += static_cast<char>((n >> 8) & 0xff);
      f += static_cast<char>(n & 0xff);
    }
    uint8_t mask[4];
    for (auto& m : mask) m = static_cast<uint8_t>(rng_());
    f.append(reinterpret_cast<char*>(mask), 4);
    for (size_t i = 0; i < payload.size(); ++i)
      f += static_cast<char>(static_cast<uint8_t>(payload[i]) ^ mask[i % 4]);
    return c_.write(f);
  }

  struct Message {
    uint8_t opcode;
    std::string payload;  // for binary messages: the channel byte, then the data
  };
  // The next message (a close frame included), or nothing when the connection ends first or
  // `timeout` passes.
  std::optional<Message> next(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    if (!frame(buf_))
      buf_ += c_.readUntil([this](const std::string& got) { return frame(buf_ + got).has_value(); },
                           timeout);
    const auto f = frame(buf_);
    if (!f) return std::nullopt;
    Message m{static_cast<uint8_t>(buf_[0] & 0x0f), buf_.substr(f->first, f->second)};
    buf_.erase(0, f->first + f->second);
    return m;
  }

 private:
  // (header length, payload length) of the whole frame at the front of `b`, if it has arrived.
  static std::optional<std::pair<size_t, size_t>> frame(const std::string& b) {
    if (b.size() < 2) return std::nullopt;
    auto byte = [&b](size_t i) { return static_cast<size_t>(static_cast<uint8_t>(b[i])); };
    size_t len = byte(1) & 0x7f, at = 2;
    if (len >= 126) {
      at = len == 126 ? 4 : 10;
      if (b.size() < at) return std::nullopt;
      len = 0;
      for (size_t i = 2; i < at; ++i) len = (len << 8) | byte(i);
    }
    if (b.size() < at + len) return std::nullopt;
    return std::pair{at, len};
  }

  RawClient& c_;
  std::string buf_;
  std::minstd_rand rng_{12345};
};

}  // namespace nodelet::testing
