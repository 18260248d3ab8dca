"""The kubelet DRA plugin API v1 and the plugin registration API: messages generated from the
upstream protos at build time (``dra_pb2``, ``registration_pb2``) and the typed gRPC wiring
(`hami_common.dra.api.services`)."""
