"""update-service: releases of the VMs' agent and runtime, and rollouts that deliver them."""
