/**
 * The image service's gRPC API, shaped like the CRI ImageService (PullImage, ImageStatus,
 * ListImages, RemoveImage) so a kubelet-side shim can map onto it one to one. Kept as data in
 * protobufjs JSON form (no .proto asset in dist/), package `coffer.image.v1`.
 */
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'

export const IMAGE_SERVICE_PROTO = `syntax = "proto3";
package coffer.image.v1;

message ImageSpec { string image = 1; }
message Image {
  string id = 1;                    // the platform manifest digest
  repeated string repo_tags = 2;    // references pulled as this image
  repeated string repo_digests = 3; // the digests the policy accepted
  uint64 size = 4;                  // unpacked bytes
  repeated string diff_ids = 5;
}
message PullImageRequest { ImageSpec image = 1; string platform = 2; }
message PullImageResponse { string image_ref = 1; string rootfs = 2; uint32 layers_unpacked = 3; uint32 layers_reused = 4; }
// PullImageProgress: the same pull, streaming what happens; the last message carries the result.
message PullEvent {
  string type = 1;               // "verified" | "layer-start" | "layer-progress" | "layer" | "done"
  string manifest_digest = 2;    // verified: what the policy accepted
  string scope = 3;              // verified: the policy scope that decided
  string diff_id = 4;            // layer-start, layer-progress, layer
  uint64 size = 5;               // layer-start, layer-progress, layer: compressed bytes
  string state = 6;              // layer: "unpacked" | "reused"
  PullImageResponse result = 7;  // done
  uint64 bytes = 8;              // layer-progress: blob bytes fetched so far (sampled every 200 ms)
  string digest = 9;             // layer-start: the layer blob's digest
}
message ImageStatusRequest { ImageSpec image = 1; }
message ImageStatusResponse { Image image = 1; }
message ListImagesRequest {}
message ListImagesResponse { repeated Image images = 1; }
message RemoveImageRequest { ImageSpec image = 1; }
message RemoveImageResponse {}

service ImageService {
  rpc PullImage(PullImageRequest) returns (PullImageResponse);
  rpc PullImageProgress(PullImageRequest) returns (stream PullEvent);
  rpc ImageStatus(ImageStatusRequest) returns (ImageStatusResponse);
  rpc ListImages(ListImagesRequest) returns (ListImagesResponse);
  rpc RemoveImage(RemoveImageRequest) returns (RemoveImageResponse);
}
`

const str = (id: number) => ({ type: 'string', id })
const JSON_DEF: Parameters<typeof protoLoader.fromJSON>[0] = {
  nested: {
    coffer: {
      nested: {
        image: {
          nested: {
            v1: {
              nested: {
                ImageSpec: {
                  fields: { image: str(1) },
                },
                Image: {
                  fields: {
                    id: str(1),
                    repo_tags: { rule: 'repeated', type: 'string', id: 2 },
                    repo_digests: { rule: 'repeated', type: 'string', id: 3 },
                    size: { type: 'uint64', id: 4 },
                    diff_ids: { rule: 'repeated', type: 'string', id: 5 },
                  },
                },
                PullImageRequest: { fields: { image: { type: 'ImageSpec', id: 1 }, platform: str(2) } },
                PullImageResponse: {
                  fields: {
                    image_ref: str(1),
                    rootfs: str(2),
                    layers_unpacked: { type: 'uint32', id: 3 },
                    layers_reused: { type: 'uint32', id: 4 },
                  },
                },
                PullEvent: {
                  fields: {
                    type: str(1),
                    manifest_digest: str(2),
                    scope: str(3),
                    diff_id: str(4),
                    size: { type: 'uint64', id: 5 },
                    state: str(6),
                    result: { type: 'PullImageResponse', id: 7 },
                    bytes: { type: 'uint64', id: 8 },
                    digest: str(9),
                  },
                },
                ImageStatusRequest: { fields: { image: { type: 'ImageSpec', id: 1 } } },
                ImageStatusResponse: { fields: { image: { type: 'Image', id: 1 } } },
                ListImagesRequest: { fields: {} },
                ListImagesResponse: { fields: { images: { rule: 'repeated', type: 'Image', id: 1 } } },
                RemoveImageRequest: { fields: { image: { type: 'ImageSpec', id: 1 } } },
                RemoveImageResponse: { fields: {} },
                ImageService: {
                  methods: {
                    PullImage: {
                      requestType: 'PullImageRequest',
                      responseType: 'PullImageResponse',
                      comment: '',
                    },
                    PullImageProgress: {
                      requestType: 'PullImageRequest',
                      responseType: 'PullEvent',
                      responseStream: true,
                      comment: '',
                    },
                    ImageStatus: {
                      requestType: 'ImageStatusRequest',
                      responseType: 'ImageStatusResponse',
                      comment: '',
                    },
                    ListImages: {
                      requestType: 'ListImagesRequest',
                      responseType: 'ListImagesResponse',
                      comment: '',
                    },
                    RemoveImage: {
                      requestType: 'RemoveImageRequest',
                      responseType: 'RemoveImageResponse',
                      comment: '',
                    },
                  },
                },
              },
            },
          },
        },
      },
    },
  },
}

export interface ImageMessage {
  id: string
  repo_tags: string[]
  repo_digests: string[]
  size: string | number
  diff_ids: string[]
}

let cached: grpc.ServiceDefinition | undefined
export function imageServiceDefinition(): grpc.ServiceDefinition {
  if (!cached) {
    const pkg = protoLoader.fromJSON(JSON_DEF, { keepCase: true, longs: String, defaults: true })
    const loaded = grpc.loadPackageDefinition(pkg) as unknown as {
      coffer: { image: { v1: { ImageService: grpc.ServiceClientConstructor } } }
    }
    cached = loaded.coffer.image.v1.ImageService.service
  }
  return cached
}
