"""Where events come from: Kafka (`run`, `demo`) or a file (`replay`), both through one Pipeline."""
from __future__ import annotations
