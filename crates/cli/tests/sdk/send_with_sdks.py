"""Sends events to a running `strata serve` through the real Segment and RudderStack Python
SDKs from PyPI (segment-analytics-python, rudder-sdk-python), changing only their host.

Usage: send_with_sdks.py <base url> <write key>
Exits non-zero if either SDK reports an error. The Rust test (crates/cli/tests/serve.rs)
then checks the resulting profiles through the admin API.
"""

import sys

from segment.analytics.client import Client as SegmentClient
from rudderstack.analytics.client import Client as RudderClient

url, write_key = sys.argv[1], sys.argv[2]
errors = []


def on_error(error, items):
    errors.append(f"{error!r} ({len(items)} messages)")


# Segment: application/json with HTTP Basic, everything through /v1/batch.
segment = SegmentClient(write_key, host=url, on_error=on_error, max_retries=2)
segment.page(anonymous_id="visitor-1", name="Home", properties={"path": "/"})
segment.track(anonymous_id="visitor-1", event="Product Viewed",
              properties={"product_id": "sku-1", "price": 19.5})
segment.identify("ada", {"email": "ada@example.com", "plan": "free"}, anonymous_id="visitor-1",
                 context={"consent": {"categoryPreferences": {"marketing": True}}})
segment.track("ada", "Order Completed", {"order_id": "o-1", "revenue": 39.0, "currency": "USD"})
segment.alias("ada-legacy-id", "ada")
segment.group("ada", "acme", {"name": "Acme Inc."})
segment.screen("ada", name="Settings")
segment.flush()
segment.join()

# RudderStack: gzip-encoded batches with HTTP Basic.
rudder = RudderClient(write_key, host=url, on_error=on_error, max_retries=2)
rudder.identify("grace", {"email": "grace@example.com", "plan": "pro"})
for i in range(120):  # more than one upload batch
    rudder.track("grace", "Product Viewed", {"product_id": f"sku-{i}"})
rudder.identify("ada", {"plan": "pro"})
rudder.flush()
rudder.join()

if errors:
    print("SDK errors:", *errors, sep="\n  ", file=sys.stderr)
    sys.exit(1)
print("sent")
