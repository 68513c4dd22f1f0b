#!/usr/bin/env bash
# Builds tests/consumer against an installed libresil in PREFIX, through
# find_package (shared and static) and through pkg-config, runs each, and
# checks that asking find_package for the next major version fails.
# Usage: tests/consumer/run.sh PREFIX WORKDIR
set -euo pipefail
prefix=$(cd "$1" && pwd)
work=$2
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work" && mkdir -p "$work"

cmake -S "$here" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$prefix" >"$work/configure.log"
cmake --build "$work/cmake" >"$work/build.log"
LD_LIBRARY_PATH="$prefix/lib" "$work/cmake/consumer_shared"
"$work/cmake/consumer_static"
if ldd "$work/cmake/consumer_static" | grep -q libresil; then
  echo "consumer_static links libresil.so: expected the static archive" >&2; exit 1
fi
echo "consumer: find_package(resil CONFIG) ok, shared and static"

pc="$prefix/lib/pkgconfig"
cc -std=c11 -Wall -Wextra -Werror "$here/main.c" \
   $(PKG_CONFIG_PATH="$pc" pkg-config --cflags --libs resil) -o "$work/consumer_pkgconfig"
LD_LIBRARY_PATH="$prefix/lib" "$work/consumer_pkgconfig"
cc -std=c11 -Wall -Wextra -Werror "$here/main.c" -static-libgcc \
   $(PKG_CONFIG_PATH="$pc" pkg-config --cflags resil) "$prefix/lib/libresil.a" \
   $(PKG_CONFIG_PATH="$pc" pkg-config --libs-only-other --static resil) -o "$work/consumer_pkgconfig_static"
"$work/consumer_pkgconfig_static"
echo "consumer: pkg-config resil ok ($(PKG_CONFIG_PATH="$pc" pkg-config --modversion resil))"

major=$(PKG_CONFIG_PATH="$pc" pkg-config --modversion resil | cut -d. -f1)
next=$((major + 1))
if cmake -S "$here" -B "$work/next" -DCMAKE_PREFIX_PATH="$prefix" \
     -DRESIL_WANT_VERSION="$next.0" >"$work/next.log" 2>&1; then
  echo "find_package(resil $next.0) succeeded against $major.x: version check is broken" >&2; exit 1
fi
grep -q "requested version" "$work/next.log"
echo "consumer: find_package(resil $next.0) correctly refused"
