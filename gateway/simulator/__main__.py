"""`python -m gateway.simulator --port 8790`: the simulated provider for `make run` and benchmarks."""

import argparse
import logging

from gateway.simulator.server import SimulatorServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8790)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    server = SimulatorServer(host=args.host, port=args.port)
    logging.getLogger("simulator").info("simulated provider on %s", server.base_url)
    server.serve_forever()


if __name__ == "__main__":
    main()
