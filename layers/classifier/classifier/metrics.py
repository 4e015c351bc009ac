"""Every CloudWatch metric the service emits, named once: the functions emit them through
Powertools (EMF log lines), and the dashboard and alarms in ``template.yaml`` name the same
metrics, namespace and dimensions (``tests/unit/test_dashboard.py`` checks that they agree).

The namespace is ``POWERTOOLS_METRICS_NAMESPACE`` (template Globals); Powertools adds the
``service`` dimension (``POWERTOOLS_SERVICE_NAME``) to every metric.

Three families, by their dimensions:

- **operations** (``service`` only, so alarms can name them exactly): predictions served, images
  rejected, records not stored, training images accepted, feedback given;
- **model quality per prediction** (``service`` + ``ModelVersion``, and ``Label`` for the class
  counts): which class, how confident, how long decoding and inference took, agreement of feedback;
- **the monitor's window figures** (``service`` only): drift score, mean confidence,
  low-confidence share, feedback accuracy, predictions in the window.
"""

from enum import StrEnum


class Metric(StrEnum):
    # operations
    PREDICTIONS = "Predictions"
    REJECTED_IMAGES = "RejectedImages"
    RECORDS_NOT_STORED = "RecordsNotStored"
    TRAINING_IMAGES_ACCEPTED = "TrainingImagesAccepted"
    UPLOAD_IMAGES_ACCEPTED = "UploadImagesAccepted"
    RETRAINING_JOBS_STARTED = "RetrainingJobsStarted"
    RETRAINING_JOBS_FAILED = "RetrainingJobsFailed"
    PROMOTIONS = "Promotions"
    # model quality, per prediction (dimension ModelVersion; PREDICTED_CLASS also Label)
    PREDICTED_CLASS = "PredictionsByClass"
    CONFIDENCE = "Confidence"
    LOW_CONFIDENCE = "LowConfidencePredictions"
    DECODE_MS = "DecodeMilliseconds"
    INFERENCE_MS = "InferenceMilliseconds"
    FEEDBACK_CORRECT = "FeedbackCorrect"
    FEEDBACK_WRONG = "FeedbackWrong"
    # the monitor's window figures
    WINDOW_PREDICTIONS = "WindowPredictions"
    DRIFT_SCORE = "DriftScore"
    WINDOW_MEAN_CONFIDENCE = "WindowMeanConfidence"
    WINDOW_LOW_CONFIDENCE_SHARE = "WindowLowConfidenceShare"
    WINDOW_FEEDBACK_ACCURACY = "WindowFeedbackAccuracy"
    # batch jobs (service only)
    BATCH_JOBS_STARTED = "BatchJobsStarted"
    BATCH_JOBS_SUCCEEDED = "BatchJobsSucceeded"
    BATCH_JOBS_FAILED = "BatchJobsFailed"
    BATCH_JOB_IMAGES = "BatchJobImages"
    BATCH_JOB_CHUNKS_FAILED = "BatchJobChunksFailed"


MODEL_VERSION = "ModelVersion"  # dimension: the version that served
LABEL = "Label"  # dimension: the predicted class
SERVICE = "service"  # dimension Powertools adds to every metric

# Which extra dimensions each per-prediction metric carries (the others carry only ``service``).
PER_PREDICTION = {
    Metric.PREDICTED_CLASS: (MODEL_VERSION, LABEL),
    Metric.CONFIDENCE: (MODEL_VERSION,),
    Metric.LOW_CONFIDENCE: (MODEL_VERSION,),
    Metric.DECODE_MS: (MODEL_VERSION,),
    Metric.INFERENCE_MS: (MODEL_VERSION,),
    Metric.FEEDBACK_CORRECT: (MODEL_VERSION,),
    Metric.FEEDBACK_WRONG: (MODEL_VERSION,),
}
