"""Train the digits CNN of edgekit_demo.zoo on scikit-learn's digits (seconds) and save its state dict
beside this file, for examples/digits-pipeline.yaml."""

from pathlib import Path

import torch

from edgekit_demo import zoo

if __name__ == "__main__":
    x, y, _, _ = zoo.digits_split()
    torch.manual_seed(0)
    out = Path(__file__).with_name("digits_cnn.pt")
    zoo.save_weights(zoo.train(zoo.digits_cnn(), x, y, epochs=4), out)
    print(out)
