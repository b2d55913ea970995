#!/usr/bin/env python3
"""PyTorch SigNet embeddings per second (the network only), for `countersign bench`.

SigNet as in Hafemann, Sabourin and Oliveira 2017 ("Learning features for offline handwritten
signature verification using deep convolutional neural networks"): 150x220 grayscale input, five
convolutions (96x11 stride 4, 256x5, 384x3, 384x3, 256x3, with batch norm and max pooling) and two
fully connected layers of 2048: about 15.8 M parameters. Random weights (speed does not depend on
them), inference mode, batch 64, on the number of threads given.

Prints one JSON line: {"embeddings_per_s": ..., "threads": ..., "batch": ..., "params": ...}.
Exit status 2 when torch cannot be imported (the caller says so and goes on).
"""
import json
import sys
import time

try:
    import torch
    from torch import nn
except Exception as e:  # noqa: BLE001 - any import failure means "no PyTorch here"
    print(json.dumps({"error": f"torch not importable: {e}"}))
    sys.exit(2)


def conv_bn(i, o, k, s=1, p=0):
    return [nn.Conv2d(i, o, k, s, p, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]


class SigNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            *conv_bn(1, 96, 11, 4),
            nn.MaxPool2d(3, 2),
            *conv_bn(96, 256, 5, 1, 2),
            nn.MaxPool2d(3, 2),
            *conv_bn(256, 384, 3, 1, 1),
            *conv_bn(384, 384, 3, 1, 1),
            *conv_bn(384, 256, 3, 1, 1),
            nn.MaxPool2d(3, 2),
        )
        self.fc = nn.Sequential(
            nn.Linear(256 * 3 * 5, 2048, bias=False), nn.BatchNorm1d(2048), nn.ReLU(inplace=True),
            nn.Linear(2048, 2048, bias=False), nn.BatchNorm1d(2048), nn.ReLU(inplace=True),
        )

    def forward(self, x):
        return self.fc(self.features(x).flatten(1))


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
    batch = 64
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = SigNet().eval()
    params = sum(p.numel() for p in model.parameters())
    x = torch.rand(batch, 1, 150, 220)
    with torch.inference_mode():
        model(x)  # warm-up
        n = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds or n < 2 * batch:
            model(x)
            n += batch
        dt = time.perf_counter() - t0
    print(json.dumps({"embeddings_per_s": n / dt, "threads": threads, "batch": batch, "params": params}))


if __name__ == "__main__":
    main()
