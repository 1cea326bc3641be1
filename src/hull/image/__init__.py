"""hull's image layer: OCI images in a content store, (later) unpacked into bundles.

Never imported by hull-runtime; the spec data types live in ``hull.oci.image``.
"""
