# nodelet_cc_library(NAME n SRCS ... [DEPS public...] [PRIVATE_DEPS ...])
# nodelet_cc_test(NAME n SRCS ... [DEPS ...] [LABELS ...])
include(GoogleTest)

function(nodelet_cc_library)
  cmake_parse_arguments(A "" "NAME" "SRCS;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(${A_NAME} STATIC ${A_SRCS})
  target_include_directories(${A_NAME} PUBLIC ${PROJECT_SOURCE_DIR}
                             ${PROJECT_BINARY_DIR}/generated)
  target_link_libraries(${A_NAME} PUBLIC ${A_DEPS}
                        PRIVATE ${A_PRIVATE_DEPS} nodelet_options nodelet_warnings)
endfunction()

function(nodelet_cc_test)
  cmake_parse_arguments(A "" "NAME" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${A_NAME} ${A_SRCS})
  target_include_directories(${A_NAME} PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(${A_NAME} PRIVATE ${A_DEPS} GTest::gmock GTest::gtest_main
                        nodelet_options nodelet_warnings)
  if(NOT A_LABELS)
    set(A_LABELS unit)
  endif()
  set(props LABELS "${A_LABELS}")
  if("e2e" IN_LIST A_LABELS)
    # e2e tests share one containerd (one restarts it): never run two at once.
    list(APPEND props RUN_SERIAL TRUE TIMEOUT 300)
  else()
    list(APPEND props TIMEOUT 60)
  endif()
  gtest_discover_tests(${A_NAME} DISCOVERY_MODE PRE_TEST
                       PROPERTIES ${props}
                       EXTRA_ARGS --gtest_color=no)
endfunction()
