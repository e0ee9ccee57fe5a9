// Turns a CaseForReading into Cornerstone `wadors:` image ids, one per frame, and registers each
// instance's DICOM JSON (from the series metadata endpoint) with the image loader, which needs it
// before it can decode a frame. Keeps a map from image id back to (SOPInstanceUID, frame) for the
// read document.
import { wadors } from '@cornerstonejs/dicom-image-loader';
import { seriesMetadata } from './api.js';

const SOP_INSTANCE_UID = '00080018';
const NUMBER_OF_FRAMES = '00280008';

/** Return {imageIds, frameOf: Map(imageId -> {sop_instance_uid, frame, rows, columns})}. */
export async function registerCaseImages(caseForReading) {
  const { wadors_root: root, study_instance_uid: study, series_instance_uid: series } = caseForReading;
  const metadata = await seriesMetadata(root, study, series);
  const bySop = new Map();
  for (const instance of metadata) {
    const uid = instance[SOP_INSTANCE_UID]?.Value?.[0];
    if (uid) bySop.set(uid, instance);
  }
  const imageIds = [];
  const frameOf = new Map();
  for (const instance of caseForReading.instances) {
    const json = bySop.get(instance.sop_instance_uid);
    if (!json) throw new Error(`series metadata lacks instance ${instance.sop_instance_uid}`);
    const frames = instance.frames || Number(json[NUMBER_OF_FRAMES]?.Value?.[0] || 1);
    for (let frame = 1; frame <= frames; frame += 1) {
      const imageId = `wadors:${root}/studies/${study}/series/${series}/instances/${instance.sop_instance_uid}/frames/${frame}`;
      wadors.metaDataManager.add(imageId, json);
      imageIds.push(imageId);
      frameOf.set(imageId, {
        sop_instance_uid: instance.sop_instance_uid,
        frame,
        rows: instance.rows,
        columns: instance.columns,
      });
    }
  }
  return { imageIds, frameOf };
}
