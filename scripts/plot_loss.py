#!/usr/bin/env python3
"""plot_loss.py LOG.csv OUT.png: plots a `loom train` log (train loss per step,
eval loss where measured; for a VQ log, `loom train --vq-only`, the held-out
reconstruction PSNR on a second axis). Needs matplotlib (Debian: python3-matplotlib)."""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plot_loss.py LOG.csv OUT.png")
    steps, loss, esteps, eloss, psteps, psnr = [], [], [], [], [], []
    with open(sys.argv[1]) as f:
        for row in csv.DictReader(f):
            steps.append(int(row["step"]))
            loss.append(float(row["loss"]))
            if row.get("eval_loss"):
                esteps.append(int(row["step"]))
                eloss.append(float(row["eval_loss"]))
            if row.get("eval_psnr"):
                psteps.append(int(row["step"]))
                psnr.append(float(row["eval_psnr"]))
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(steps, loss, lw=0.8, label="train loss")
    if esteps:
        ax.plot(esteps, eloss, "o-", ms=3, label="eval loss (held-out records)")
    ax.set_xlabel("step")
    ax.set_ylabel("MSE + commitment" if psteps else "cross-entropy (nats/token)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left")
    if psteps:
        ax2 = ax.twinx()
        ax2.plot(psteps, psnr, "s-", color="tab:green", ms=3, label="held-out PSNR (dB)")
        ax2.set_ylabel("PSNR (dB)")
        ax2.legend(loc="upper right")
    ax.set_title(sys.argv[1].split("/")[-1])
    fig.tight_layout()
    fig.savefig(sys.argv[2])


if __name__ == "__main__":
    main()
