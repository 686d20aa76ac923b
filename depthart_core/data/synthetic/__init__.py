"""Procedural synthetic indoor RGB-D scenes (ray-cast in torch) and the on-disk set format.

Modules, lowest first (each imports only those above it):
    config      `SynthConfig` (what a caller sets) and `Scene` (one sampled frame)
    textures    the texture bank: procedural tiles and scikit-image photographs, mip-mapped
    furniture   materials and furniture placement (numpy)
    scene       rooms, openings, lights, cameras (numpy)
    trace       ray/primitive intersection, tile culling, the room box
    shade       surfaces, texture lookup, point lights and shadow rays
    render      seeded frames, sequences and streams: the entry point for data
    set         frames written to disk ("depthart-synth/1") and `SyntheticSet`, their reader
"""
