# Every dependency comes from Debian 12 packages (packaging/install-deps.sh installs them).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
find_package(nlohmann_json CONFIG REQUIRED)
find_package(spdlog CONFIG REQUIRED)
find_package(yaml-cpp CONFIG REQUIRED)
find_package(CURL REQUIRED)
find_package(OpenSSL REQUIRED)  # base64 for kubeconfig data; the fake API server's TLS
find_package(GTest CONFIG REQUIRED)
# cpp-httplib 0.11 has no CMake config in Debian; libseccomp and libsystemd are pkg-config only.
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
pkg_check_modules(SECCOMP REQUIRED IMPORTED_TARGET libseccomp)
pkg_check_modules(SYSTEMD REQUIRED IMPORTED_TARGET libsystemd)
find_program(NODELET_PROTOC protoc REQUIRED)
find_program(NODELET_GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)
