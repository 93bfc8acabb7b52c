"""ENAS micro (cell) search on Fashion-MNIST, then retraining of the derived cells.

Same protocol as `enas_macro_fashion_mnist.py`, over normal and reduction cells.

    python examples/enas_micro_fashion_mnist.py --search-minutes 40 --retrain-epochs 10
"""

from enas_macro_fashion_mnist import run

if __name__ == "__main__":
    run("micro")
