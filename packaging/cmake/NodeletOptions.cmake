# Compiler warnings and sanitizers, as INTERFACE targets every nodelet target links privately.
add_library(nodelet_warnings INTERFACE)
target_compile_options(nodelet_warnings INTERFACE
  -Wall -Wextra -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wconversion -Wsign-conversion
  -Woverloaded-virtual -Wnull-dereference -Wformat=2 -Wimplicit-fallthrough
  -Wduplicated-cond -Wlogical-op -Wsuggest-override -Wswitch-enum
  # Designated initialisers deliberately leave defaulted members out.
  -Wno-missing-field-initializers)
option(NODELET_WERROR "Treat warnings as errors" OFF)
if(NODELET_WERROR)
  target_compile_options(nodelet_warnings INTERFACE -Werror)
endif()

add_library(nodelet_options INTERFACE)
option(NODELET_SANITIZE "Build with AddressSanitizer and UndefinedBehaviorSanitizer" OFF)
if(NODELET_SANITIZE)
  target_compile_options(nodelet_options INTERFACE -fsanitize=address,undefined
                         -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_link_options(nodelet_options INTERFACE -fsanitize=address,undefined)
endif()
