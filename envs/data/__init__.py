"""The data side: recorded play as Minari datasets, their encoded form, collection policies, start segments,
dream recordings, revisit paths, training memory draws and scene-map files."""
