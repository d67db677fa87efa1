#!/bin/sh
# One-shot (temporalio/admin-tools): create Relance's namespace if it is missing.
# temporalio/server creates no namespace by itself. Search attributes are not registered here:
# `relance worker` registers them at start (cli.devserver.ensure_search_attributes), from the
# one list in workflows/contract.py.
# Reads TEMPORAL_ADDRESS, NAMESPACE and NAMESPACE_RETENTION from the environment.
set -eu

if temporal operator namespace describe --namespace "$NAMESPACE" >/dev/null 2>&1; then
    echo "Namespace $NAMESPACE exists"
else
    temporal operator namespace create --namespace "$NAMESPACE" --retention "$NAMESPACE_RETENTION"
fi

# A new namespace reaches every frontend's cache only after a refresh (about 10 s): wait for it,
# so the worker and the API that start after this job find it.
tries=0
until temporal operator search-attribute list --namespace "$NAMESPACE" >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -ge 60 ]; then
        echo "Namespace $NAMESPACE is still not served after 60 s" >&2
        exit 1
    fi
    sleep 1
done
echo "Namespace $NAMESPACE is ready"
