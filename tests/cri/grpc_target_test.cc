#include <gtest/gtest.h>

#include "cri/runtime_service.h"

namespace nodelet::cri {
namespace {

TEST(GrpcTargetTest, AcceptsTheKubeletSpelling) {
  EXPECT_EQ(grpcTarget("unix:///run/containerd/containerd.sock").value(),
            "unix:///run/containerd/containerd.sock");
  EXPECT_EQ(grpcTarget("/run/containerd/containerd.sock").value(),
            "unix:///run/containerd/containerd.sock");
}

TEST(GrpcTargetTest, RejectsWhatLinuxCannotUse) {
  for (const char* bad :
       {"", "tcp://127.0.0.1:1234", "npipe:////./pipe/x", "unix://relative", "containerd.sock"}) {
    auto r = grpcTarget(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::InvalidArgument);
  }
}

}  // namespace
}  // namespace nodelet::cri
