"""The only package that talks to RabbitMQ (dramatiq and pika live here and nowhere else)."""

from shared.messaging.aio import AsyncBrokerClient, NotConnected, encode_for_queue
from shared.messaging.broker import (
    BrokerPublisher,
    LeadflowBroker,
    ParkedMessage,
    Publisher,
    declare_handler,
    make_broker,
)
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
    StepCompleted,
)

__all__ = [
    "EMAIL_DELIVERY",
    "FEEDBACK",
    "HTTP_DELIVERY",
    "ROUTER",
    "AsyncBrokerClient",
    "BrokerPublisher",
    "DeliverEmail",
    "DeliverHttp",
    "FeedbackAccepted",
    "FlowReply",
    "LeadSubmitted",
    "LeadflowBroker",
    "Message",
    "NotConnected",
    "ParkedMessage",
    "Publisher",
    "StepCompleted",
    "declare_handler",
    "encode_for_queue",
    "make_broker",
]
