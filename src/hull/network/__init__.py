"""hull's container networking: CNI configs and plugins (libcni's job), network namespaces, networks."""
