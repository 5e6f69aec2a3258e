"""Routes of market data's endpoints (mounted under /api/v1/ and /api/ by rrr_site.api.urls)."""

from django.urls import path

from marketdata.api import views

urlpatterns = [
    path("marketdata/symbols", views.SymbolListView.as_view(), name="api-symbols"),
    path("marketdata/symbols/<str:symbol>/bars", views.BarListView.as_view(), name="api-bars"),
    path("marketdata/symbols/<str:symbol>/quote", views.QuoteView.as_view(), name="api-quote"),
    path("marketdata/symbols/<str:symbol>/book", views.BookView.as_view(), name="api-book"),
]
