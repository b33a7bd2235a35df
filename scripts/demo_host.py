"""A sample host: a voice-agent SDK's CLI recording reference events.

python scripts/demo_host.py --state-dir DIR [--endpoint URL]
"""

from __future__ import annotations

import argparse
import json

from spool import Schema, Telemetry


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--endpoint")
    parser.add_argument("--calls", type=int, default=3)
    args = parser.parse_args()
    with Telemetry(
        app="demo",
        version="1.4.2",
        schema=Schema.reference(),
        endpoint=args.endpoint,
        state_dir=args.state_dir,
        trigger_interval_s=0,  # the demo wants the uploader at every start
        backoff_base_s=1.0,  # and a short wait after the offline attempts
        backoff_max_s=2.0,
    ) as t:
        t.track("cli_command", cli_command="eval")
        t.track("agent_configured", builtin_tools=3, custom_tools=2, integration="mcp")
        for _ in range(args.calls):
            t.track("call_started", engine="pipeline", carrier="twilio", direction="inbound")
            t.track(
                "call_completed",
                outcome="completed",
                engine="pipeline",
                carrier="twilio",
                direction="inbound",
                latency_ms=812,
                duration_seconds=95.5,
                turn_count_bucket=7,
                # Not on the allowlist: removed and counted, never stored.
                customer_email="jane@example.com",
            )
        status = t.status()
    print(json.dumps({k: status[k] for k in ("enabled", "reason", "queued", "dropped")}))


if __name__ == "__main__":
    main()
