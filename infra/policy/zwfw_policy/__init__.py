"""Policies for zwfw stacks on the government cloud, each citing the clause it enforces."""
