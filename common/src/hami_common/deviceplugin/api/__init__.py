"""The kubelet device plugin API v1beta1: messages generated from ``api.proto`` at build time
(``api_pb2``) and the typed gRPC service wiring (`hami_common.deviceplugin.api.services`)."""
