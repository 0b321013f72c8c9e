"""The only package that talks to RabbitMQ (pika lives here and nowhere else)."""

from shared.messaging.client import AsyncBrokerClient, NotConnected
from shared.messaging.envelope import Envelope
from shared.messaging.messages import (
    EMAIL_DELIVERY,
    FEEDBACK,
    HTTP_DELIVERY,
    ROUTER,
    DeliverEmail,
    DeliverHttp,
    FeedbackAccepted,
    FlowReply,
    LeadSubmitted,
    Message,
    RunAuction,
    StepCompleted,
    StepDue,
)
from shared.messaging.policy import ParkedMessage
from shared.messaging.runtime import (
    AsyncPublisher,
    Consumer,
    Publisher,
    ThreadPublisher,
    Worker,
    holder,
)

__all__ = [
    "EMAIL_DELIVERY",
    "FEEDBACK",
    "HTTP_DELIVERY",
    "ROUTER",
    "AsyncBrokerClient",
    "AsyncPublisher",
    "Consumer",
    "DeliverEmail",
    "DeliverHttp",
    "Envelope",
    "FeedbackAccepted",
    "FlowReply",
    "LeadSubmitted",
    "Message",
    "NotConnected",
    "ParkedMessage",
    "Publisher",
    "RunAuction",
    "StepCompleted",
    "StepDue",
    "ThreadPublisher",
    "Worker",
    "holder",
]
