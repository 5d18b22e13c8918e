//! Prometheus remote_write 1.0 and 2.0 for Fedwatch: the protobuf messages, the
//! snappy+protobuf codecs, the receiver route (`POST /api/v1/write`) and the forwarder that pushes a tier's
//! data upstream.

pub mod clock;
pub mod codec;
pub mod dedupe;
pub mod downsample;
pub mod forward;
pub mod limits;
pub mod prompb;
pub mod receiver;
pub mod v2;

pub use clock::{Clock, ManualClock, system_clock};
pub use codec::{
    DEFAULT_MAX_DECOMPRESSED_BYTES, DecodeError, DecodedRequest, InvalidSeries, LabelProblem, decode_write_request,
    decode_write_request_partial, encode_write_request,
};
pub use dedupe::{HaConfig, HaTracker};
pub use downsample::{Downsampler, parse_resolution_flag};
pub use forward::{FlushError, Forwarder, ForwarderConfig, ForwarderError, WireProtocol};
pub use limits::{IngestBudget, IngestLimits};
pub use receiver::{EXEMPLARS_WRITTEN, HISTOGRAMS_WRITTEN, ReceiverState, SAMPLES_WRITTEN, WRITE_PATH, write_router};
pub use v2::{DecodedV2, V2_PROTO_MESSAGE, decode_v2_request, encode_v2_request};
