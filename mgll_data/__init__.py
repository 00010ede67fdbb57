"""mgll: build multi-granular medical vision-language datasets and pretrain MGLL models on them."""

__version__ = "0.1.0"
