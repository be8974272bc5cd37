"""Run both fakes as a stand-alone upstream (for the benchmark or a manual try):

    python -m tests.fakes --openai-port 8101 --anthropic-port 8102 --chunks 20 --chunk-delay 0.1

then point OPENAI_BASE_URL at http://127.0.0.1:8101/v1 and ANTHROPIC_BASE_URL at
http://127.0.0.1:8102 (any non-empty API keys).
"""

import argparse
import threading

from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--openai-port", type=int, default=8101)
    parser.add_argument("--anthropic-port", type=int, default=8102)
    parser.add_argument("--chunks", type=int, default=20, help="text chunks per reply")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between chunks")
    parser.add_argument("--first-byte-delay", type=float, default=0.0)
    args = parser.parse_args()

    fakes = [FakeOpenAI(), FakeAnthropic()]
    for fake, port in zip(fakes, (args.openai_port, args.anthropic_port), strict=True):
        fake.configure(
            chunks=[f"w{i} " for i in range(args.chunks)],
            chunk_delay=args.chunk_delay,
            first_byte_delay=args.first_byte_delay,
        )
        fake.start(port)
        print(f"{type(fake).__name__} on {fake.url}", flush=True)
    # The fakes record every request; a long benchmark would grow that list without end.
    for fake in fakes:
        fake.record = False
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        for fake in fakes:
            fake.stop()


if __name__ == "__main__":
    main()
