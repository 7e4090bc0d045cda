# The Debian package (cpack -G DEB from a build directory): /usr/bin/nodelet, the systemd unit,
# /etc/nodelet/config.yaml (a conffile: a local edit survives upgrades), the example manifests
# and the README. Dependencies are Debian package names (packaging/install-deps.sh --runtime).
install(FILES ${PROJECT_SOURCE_DIR}/packaging/nodelet.service DESTINATION lib/systemd/system)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/config.yaml DESTINATION /etc/nodelet)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/examples/ DESTINATION share/nodelet/examples
        FILES_MATCHING PATTERN "*.yaml")
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION share/doc/nodelet)
file(WRITE ${PROJECT_BINARY_DIR}/debian/conffiles "/etc/nodelet/config.yaml\n")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME nodelet)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_PACKAGE_CONTACT "nodelet maintainers <nodelet@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Kubernetes node agent: static pods and API pods through containerd's CRI")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "A kubelet-style node agent: runs static pod manifests and the pods the API server binds\n to the node through containerd's CRI, with CNI networking, probes, node status and a\n kubelet-compatible configuration file.")
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# libcurl is opened at run time in cluster mode only, so the linker does not see it.
set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "containerd, runc, containernetworking-plugins, iptables, libgrpc++1.51, libprotobuf32, libyaml-cpp0.7, libspdlog1.10, libcpp-httplib0.11, libseccomp2, libsystemd0, libssl3, libcurl4, libc6, libstdc++6")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${PROJECT_BINARY_DIR}/debian/conffiles)
include(CPack)
