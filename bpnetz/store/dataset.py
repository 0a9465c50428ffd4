"""The xarray view of a store: lazy (Dask-backed) arrays with the locus coordinates and track names attached.

The view reads chunks through zarr-python, whose ``crc32c`` codec checks every chunk of a built store when it is
computed. An absent shard would read as zeros there, so in a store that records every chunk as written
(``schema.CHUNK_GUARANTEES``) opening the view checks that every shard file exists (one listing per array) and
raises an InputError naming the first missing one; the coordinates are read with the same checks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bpnetz.store import schema
from bpnetz.store.shards import read_checked, require_blocks

#: data variable -> dims, in schema order; ``bias`` is absent from stores without controls.
DATA_VARS = {"seq": schema.SEQ_DIMS, "signal": schema.TRACK_DIMS, "bias": schema.BIAS_DIMS}


def open_dataset(path: str | Path) -> Any:
    """An ``xarray.Dataset`` of a store.

    Dims ``locus``, ``seq_pos``, ``pos``, ``track`` (+ ``bias_track``); variables ``seq``, ``signal`` and
    ``bias`` are lazy Dask arrays chunked like the store; the locus coordinates (``chrom`` as str, ``start``,
    ``end``, ``summit``, ``kind``, ``task``, ``name``, ``source_file``, ``source_line``) are loaded as
    coordinates; ``track``/``bias_track`` hold the track names; ``attrs`` is the store's metadata.
    """
    import dask.array as da
    import xarray as xr

    group = schema.open_group(path)
    meta = schema.metadata(group)
    store_layout = schema.StoreLayout.from_dict(meta["layout"])
    all_written = schema.chunk_guarantees(meta)["all_written"]
    data_vars = {}
    for name, dims in DATA_VARS.items():
        if name in group:
            array = group[name]
            if all_written:
                require_blocks(array, 0, int(array.shape[0]))
            data_vars[name] = (dims, da.from_zarr(array, chunks=array.chunks, name=f"{name}-{meta['checksum']}"))
    coords: dict[str, Any] = {}
    for name, dtype in schema.LOCUS_COORDS.items():
        values = read_checked(group[name], 0, int(group[name].shape[0]), all_written=all_written)
        coords[name] = (schema.LOCUS_DIM, values.astype(object).astype(str) if dtype is str else np.asarray(values))
    coords["track"] = ("track", [t.name for t in store_layout.tracks])
    if store_layout.bias_tracks:
        coords["bias_track"] = ("bias_track", [t.name for t in store_layout.bias_tracks])
    return xr.Dataset(data_vars, coords=coords, attrs=dict(meta))

