# Cross-compiling for 64-bit ARM Linux with Debian's toolchain (g++-aarch64-linux-gnu) against the
# arm64 multiarch -dev packages (scripts/install-deps.sh --aarch64); test binaries run under
# qemu-user. Used by scripts/test-aarch64.sh.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# Programs (pkg-config, code generators) come from the host; libraries only from the arm64 trees.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
# Binaries run against the arm64 multiarch glibc (/lib/ld-linux-aarch64.so.1, from the -dev packages
# dependencies), with libstdc++ and libgcc linked in: the cross toolchain's own glibc copy under
# /usr/aarch64-linux-gnu hangs in thread creation under qemu-user.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static-libstdc++ -static-libgcc")
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /)
