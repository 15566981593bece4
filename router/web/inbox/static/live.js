// Live updates and presence (issue 10): being built.
