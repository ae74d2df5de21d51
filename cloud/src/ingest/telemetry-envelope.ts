import { TelemetryBatch } from "@fieldgate/shared";
import { type Static, Type } from "@sinclair/typebox";

/** A telemetry batch with its readings unchecked: what lets ingest keep the valid readings of a batch. */
export const TelemetryEnvelope = Type.Object(
  {
    ...TelemetryBatch.properties,
    readings: Type.Array(Type.Unknown(), { minItems: 1, maxItems: TelemetryBatch.properties.readings.maxItems }),
  },
  { additionalProperties: false },
);
export type TelemetryEnvelope = Static<typeof TelemetryEnvelope>;
