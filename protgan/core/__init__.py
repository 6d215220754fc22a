"""What every package stands on: errors, atomic writes, the device, distributed helpers."""
