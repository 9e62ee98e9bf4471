"""The method plugins: one small file each, a `methods.plugin.Plugin` (data) per method, registered in
`methods/catalog.py`."""
