"""zwfw on Kubernetes: the program lives in zwfw_infra (see README.md)."""

from zwfw_infra.program import main

main()
