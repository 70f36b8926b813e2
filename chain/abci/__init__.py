"""The ABCI socket layer: framing and connections only; the application knows no sockets."""
