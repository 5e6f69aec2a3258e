"""WebSocket URL routes, collected from the apps."""

from django.urls import path

from monitoring.consumers import LiveGroupConsumer

websocket_urlpatterns = [
    path("ws/<str:group>/", LiveGroupConsumer.as_asgi()),
]
