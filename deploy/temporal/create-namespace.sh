#!/bin/sh
# Registers the Temporal namespace txflow runs in, once the server answers (run from
# temporalio/admin-tools with TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE set). Safe to run again.
set -eu

addr=${TEMPORAL_ADDRESS:?TEMPORAL_ADDRESS is not set}
ns=${TEMPORAL_NAMESPACE:-default}
retention=${NAMESPACE_RETENTION:-168h}

tries=0
until temporal operator cluster health --address "$addr" >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -ge 60 ]; then
    echo "Temporal at $addr is not healthy after $tries attempts" >&2
    exit 1
  fi
  sleep 2
done

if temporal operator namespace describe --address "$addr" --namespace "$ns" >/dev/null 2>&1; then
  echo "namespace $ns exists"
else
  temporal operator namespace create --address "$addr" --namespace "$ns" --retention "$retention"
  echo "namespace $ns created (retention $retention)"
fi

# A new namespace reaches the server's caches some seconds after it is created; until then a
# worker starting (and listing the namespace's search attributes) fails with "Namespace ... is
# not found" and exits. The script ends once the namespace answers that call.
tries=0
until temporal operator search-attribute list --address "$addr" --namespace "$ns" >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -ge 60 ]; then
    echo "namespace $ns is not usable after $tries attempts" >&2
    exit 1
  fi
  sleep 1
done
echo "namespace $ns is ready"
