"""A tiny stage for the engine's tests: prints, sleeps, records a result, exits with a code."""

import argparse
import signal
import sys
import time

from core import jobresult

parser = argparse.ArgumentParser()
parser.add_argument("--workspace")
parser.add_argument("--variant")
parser.add_argument("--seconds", type=float, default=0.0)
parser.add_argument("--code", type=int, default=0)
parser.add_argument("--stubborn", action="store_true", help="ignore SIGTERM")
parser.add_argument("--out", default="result.txt")
parser.add_argument("--error", help="say this as the reason before exiting with --code")
args = parser.parse_args()
if args.stubborn:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print(f"sleepy: start variant={args.variant} seconds={args.seconds}", flush=True)
time.sleep(args.seconds)
jobresult.record([args.out], {"slept": args.seconds})
print("sleepy: done", flush=True)
if args.error:
    print(f"sleepy: error: {args.error}", file=sys.stderr, flush=True)
sys.exit(args.code)
