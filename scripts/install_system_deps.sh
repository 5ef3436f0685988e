#!/usr/bin/env bash
# Debian packages for the PACS tests: a real Orthanc (+ DICOMweb plugin), dcmtk, dciodvfy and socat
# (the TLS terminator in front of Orthanc's HTTP port in the HTTPS tests); and
# headless Chromium + its driver for the HTML report's browser tests (never a downloaded browser).
# Never orthanc-gdcm (it segfaults Orthanc on transcoding). Best effort: the tests that need
# these skip with a reason when they are missing, so a failure here is reported, not fatal.
set -u
need=()
[ -x /usr/sbin/Orthanc ] || need+=(orthanc)
[ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || need+=(orthanc-dicomweb)
command -v dciodvfy >/dev/null 2>&1 || need+=(dicom3tools)
command -v storescu >/dev/null 2>&1 || need+=(dcmtk)
command -v socat >/dev/null 2>&1 || need+=(socat)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install_system_deps: cannot install ${need[*]} (need root and apt-get); PACS and browser tests will skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
if ! apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1; then
  echo "install_system_deps: apt-get install ${need[*]} failed; PACS and browser tests will skip" >&2
fi
# apt may start an orthanc service on 8042/4242 on hosts with an init system; tests use other ports.
exit 0
