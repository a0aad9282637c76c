"""Where an EnvNet training step spends its time: ``torch.profiler`` over one bf16 step.

The step is the victim training forward + backward (bf16 autocast where the CPU has it, train
mode, random weights and inputs), profiled once after two warm-up steps. The table lists the
operators by self CPU time; ``--shapes`` groups them by input shape as well (which tensors the
``copy_`` calls convert, which maps BatchNorm runs on). A companion to ``step_anatomy.py``,
whose convolution-throughput target this explains.

    python benchmarks/profile_victim_step.py --batch 16 --threads 1
"""

from __future__ import annotations

import argparse

import common
import torch
from torch.profiler import profile

from ssgan.models.envnet import EnvNet


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=16, help="training batch (default 16)")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: default)")
    p.add_argument("--rows", type=int, default=20, help="operators listed (default 20)")
    p.add_argument("--shapes", action="store_true", help="group by input shape too")
    p.add_argument("--quick", action="store_true", help="tiny settings (seconds; for tests)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    fc = 16 if args.quick else 4096
    batch = 2 if args.quick else args.batch
    with common.num_threads(args.threads):
        torch.manual_seed(0)
        net = EnvNet(10, fc_width=fc).train()
        x = torch.randn(batch, net.window) * 0.1
        bf16 = common.bf16_supported()

        def step() -> None:
            net.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = net(x).float().logsumexp(1).mean()
            loss.backward()

        step()
        step()
        with profile(record_shapes=args.shapes) as prof:
            step()
        averages = prof.key_averages(group_by_input_shape=args.shapes)
        threads = torch.get_num_threads()
        print(f"EnvNet training step, batch {batch}, bf16 {bf16}, {threads} threads")
        print(averages.table(sort_by="self_cpu_time_total", row_limit=args.rows))
    return 0


if __name__ == "__main__":
    common.run_cli(main)
